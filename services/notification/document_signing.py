"""Letters signed by the agency that issues them: PAdES signatures with the agency's certificate.

Every PDF letter names its issuing agency (:attr:`Attachment.signed_by
<services.notification.domain.notices.Attachment.signed_by>`); before the notice is kept, the
PDF is signed with that agency's private key and certificate (pyHanko), so a citizen, a court or
another agency can check with any PAdES validator that the letter is intact and who issued it.

The signatures are PAdES baseline B-B: the signing time is the signer's claim, with no trusted
timestamp (there is no TSA to reach). The signature certifies the document (DocMDP, no changes
allowed): the letter as issued is the whole letter.

Keys and certificates come from one directory (``LETTER_SIGNING_DIR``), three files per agency,
named by the agency's machine name (``tax``, ``land_registry``, …):

    <agency>.key.pem     the private key (PKCS#8 PEM, unencrypted, mode 0600)
    <agency>.cert.pem    the agency's signing certificate
    <agency>.chain.pem   the issuing CA certificates, up to the root

``make run`` and the tests fill it with a test CA per agency (``infra/letter_ca.py``); in
production it holds each agency's real certificate. The directory is read once, at start.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

from services.runtime.settings import ConfigurationError

KEY_SUFFIX, CERT_SUFFIX, CHAIN_SUFFIX = ".key.pem", ".cert.pem", ".chain.pem"
DIGEST = "sha256"


@dataclass(frozen=True)
class SigningFiles:
    """Where one agency's key, certificate and chain lie in a letter-signing directory."""

    key: Path
    cert: Path
    chain: Path

    @classmethod
    def of(cls, directory: Path, agency: str) -> SigningFiles:
        """``<agency>.key.pem``, ``<agency>.cert.pem``, ``<agency>.chain.pem`` in ``directory``."""
        return cls(
            directory / f"{agency}{KEY_SUFFIX}",
            directory / f"{agency}{CERT_SUFFIX}",
            directory / f"{agency}{CHAIN_SUFFIX}",
        )


class NoSigningCertificate(LookupError):
    """A letter names an agency the signing directory holds no certificate for."""


class _AgencyKey(signers.Signer):
    """A pyHanko signer over a key loaded once.

    pyHanko's ``SimpleSigner`` parses its key again for every signature, and parsing checks an
    RSA key in full: 36 ms, twice per letter (the size estimate signs too), most of the cost.
    """

    def __init__(
        self,
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
        *,
        cert: asn1_x509.Certificate,
        chain: list[asn1_x509.Certificate],
    ) -> None:
        super().__init__(signing_cert=cert)
        for ca in chain:  # embedded beside the signature, so a validator can build the path
            self.cert_registry.register(ca)
        self._key = key

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        """Sign with PKCS#1 v1.5 (RSA) or ECDSA, the mechanisms pyHanko picks for these keys."""
        digest = get_pyca_cryptography_hash(digest_algorithm)
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), digest)
        return self._key.sign(data, ec.ECDSA(digest))


class LetterSigner:
    """Signs PDF letters with the key and certificate of their issuing agency."""

    def __init__(self, signers_by_agency: Mapping[str, signers.Signer]) -> None:
        self._signers = dict(signers_by_agency)
        # Space for the signature, per agency, as pyHanko sized it for the first letter: it only
        # depends on the key and certificates, and sizing it signs a dummy every time (40% of
        # the signing CPU, py-spy/cProfile).
        self._reserved: dict[str, int] = {}

    @classmethod
    def from_directory(cls, directory: Path, *, now: datetime | None = None) -> LetterSigner:
        """Every agency's signer in ``directory``; :class:`ConfigurationError` if any is unusable.

        Refused: a missing or empty directory, a certificate without its key or chain, a key that
        is not the certificate's, a certificate not valid ``now``, a key other than RSA or EC.
        """
        if not directory.is_dir():
            raise ConfigurationError(f"LETTER_SIGNING_DIR={directory}: no such directory")
        agencies = sorted(p.name.removesuffix(CERT_SUFFIX) for p in directory.glob(f"*{CERT_SUFFIX}"))
        if not agencies:
            raise ConfigurationError(
                f"LETTER_SIGNING_DIR={directory} holds no <agency>{CERT_SUFFIX}: no letter could be signed"
            )
        moment = now or datetime.now(UTC)
        return cls({agency: _load(SigningFiles.of(directory, agency), moment) for agency in agencies})

    @property
    def agencies(self) -> frozenset[str]:
        """The agencies this signer holds a certificate for."""
        return frozenset(self._signers)

    def certificate(self, agency: str) -> asn1_x509.Certificate:
        """``agency``'s signing certificate; :class:`NoSigningCertificate` if there is none."""
        signer = self._signer(agency)
        assert signer.signing_cert is not None  # every signer is loaded with its certificate
        return signer.signing_cert

    def _signer(self, agency: str) -> signers.Signer:
        try:
            return self._signers[agency]
        except KeyError:
            raise NoSigningCertificate(f"no letter-signing certificate for agency {agency!r}") from None

    async def sign(self, pdf: bytes, *, agency: str, location: str) -> bytes:
        """``pdf`` with ``agency``'s PAdES signature; :class:`NoSigningCertificate` if it has no key.

        Runs in a worker thread: signing is CPU work (milliseconds) the event loop need not wait on.
        """
        return await asyncio.to_thread(self.sign_now, pdf, agency=agency, location=location)

    def sign_now(self, pdf: bytes, *, agency: str, location: str) -> bytes:
        """:meth:`sign` on the calling thread (the benchmark times it there)."""
        signer = self._signer(agency)
        signed, reserved = _sign(pdf, signer, location, self._reserved.get(agency))
        self._reserved[agency] = reserved
        return signed


def _sign(pdf: bytes, signer: signers.Signer, location: str, reserved: int | None) -> tuple[bytes, int]:
    """The signed PDF and the signature's reserved size (hex digits), pyHanko's estimate if None."""
    meta = signers.PdfSignatureMetadata(
        field_name="Signature",
        subfilter=SigSeedSubFilter.PADES,
        md_algorithm=DIGEST,
        location=location,
        certify=True,
        docmdp_permissions=MDPPerm.NO_CHANGES,
    )
    signed = signers.PdfSigner(meta, signer).sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(pdf)), bytes_reserved=reserved
    )
    assert isinstance(signed, io.BytesIO)  # no output stream given: pyHanko returns a new one
    data = signed.getvalue()
    if reserved is None:
        (signature,) = PdfFileReader(io.BytesIO(data)).embedded_signatures
        reserved = 2 * len(signature.sig_object["/Contents"])  # bytes, written as hex digits
    return data, reserved


def _load(files: SigningFiles, now: datetime) -> signers.Signer:
    try:
        key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        chain = x509.load_pem_x509_certificates(files.chain.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"letter signing: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigurationError(f"{files.key}: an RSA or EC key is needed, not {type(key).__name__}")
    if key.public_key() != cert.public_key():
        raise ConfigurationError(f"{files.key} is not the key of the certificate {files.cert}")
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise ConfigurationError(
            f"{files.cert} is valid from {cert.not_valid_before_utc:%Y-%m-%d} to"
            f" {cert.not_valid_after_utc:%Y-%m-%d}, not now"
        )
    return _AgencyKey(key, cert=_asn1(cert), chain=[_asn1(ca) for ca in chain])


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    """The certificate as pyHanko takes it (asn1crypto)."""
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
