"""A local test CA per agency, for the letters ``make run`` and the tests sign.

In production each agency signs its letters with the certificate a licensed CA issued it; on a
developer's machine there is none, so at first start every agency of the procedure catalog gets:

- a CA of its own, "<agency's name> test CA" (its key stays in ``trust/letter-ca/``, so the
  notification service, which signs letters, cannot issue certificates);
- a signing certificate issued by it, subject O and CN the agency's Vietnamese name, key usage
  digitalSignature and nonRepudiation (what a signature on a document needs). A CN holds at
  most 64 bytes, which some names exceed in UTF-8: those get the catalog's short name as CN
  (O always has the full name);

written in the layout the notification service reads (``LETTER_SIGNING_DIR``,
:class:`services.notification.document_signing.SigningFiles`). RSA 2048 and SHA-256, as the
certificates of Vietnam's public CAs. Nothing here is trusted anywhere but by the tests and by
whoever is told to trust ``<agency>.chain.pem``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from infra.trust import write_private
from services.intake.domain.catalog import AgencyInfo, Catalog
from services.notification.document_signing import SigningFiles

VALID_FOR = timedelta(days=5 * 365)
KEY_BITS = 2048
MAX_COMMON_NAME_BYTES = 64
"""RFC 5280's upper bound for a CN, which ``cryptography`` counts in UTF-8 bytes."""


def catalog_agencies() -> dict[str, AgencyInfo]:
    """Every agency of the procedure catalog, by machine name, with the names its letters print."""
    return dict(Catalog.load().agencies)


def ensure_test_certificates(
    signing_dir: Path, ca_dir: Path, agencies: Mapping[str, AgencyInfo]
) -> list[str]:
    """A test CA and a signing certificate for each agency that has none yet; the agencies made.

    An agency whose files exist keeps them (its letters keep verifying against the same CA).
    """
    made = []
    for agency, info in agencies.items():
        if not SigningFiles.of(signing_dir, agency).cert.exists():
            issue(signing_dir, ca_dir, agency, info)
            made.append(agency)
    return made


def issue(
    signing_dir: Path, ca_dir: Path, agency: str, info: AgencyInfo, *, now: datetime | None = None
) -> None:
    """Make ``agency``'s test CA and its signing certificate, and write them (keys mode 0600)."""
    start = (now or datetime.now(UTC)) - timedelta(minutes=5)  # a little clock skew between machines
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    ca_name = _name(info, " test CA")
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), start)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    cert = (
        _builder(_name(info), ca_name, key.public_key(), start)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True, content_commitment=True), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = SigningFiles.of(signing_dir, agency)
    # All 0600 like the rest of the trust store; certificates are public, handed out on purpose.
    write_private(ca_dir / f"{agency}.ca.key.pem", _private_pem(ca_key))
    write_private(files.chain, _pem(ca))
    write_private(files.key, _private_pem(key))
    write_private(files.cert, _pem(cert))  # last: its presence means "all made"


def _name(info: AgencyInfo, suffix: str = "") -> x509.Name:
    common_name = info.name + suffix
    if len(common_name.encode()) > MAX_COMMON_NAME_BYTES:
        common_name = info.display_name + suffix
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, info.name),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: rsa.RSAPublicKey, start: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + VALID_FOR)
    )


def _usage(
    *,
    digital_signature: bool = False,
    content_commitment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,  # nonRepudiation
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
