"""A letter's PAdES signature checked as a citizen's validator would: pyHanko, one agency's CA trusted."""

from __future__ import annotations

import io
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko_certvalidator import ValidationContext

from services.notification.document_signing import SigningFiles


def trusting(signing_dir: Path, agency: str) -> ValidationContext:
    """A validator that trusts ``agency``'s CA (its ``<agency>.chain.pem``) and nothing else."""
    roots = x509.load_pem_x509_certificates(SigningFiles.of(signing_dir, agency).chain.read_bytes())
    return ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in roots]
    )


async def validated(pdf: bytes, context: ValidationContext) -> PdfSignatureStatus:
    """The status of the PDF's one signature."""
    (signature,) = PdfFileReader(io.BytesIO(pdf)).embedded_signatures
    return await async_validate_pdf_signature(signature, context)


async def signer_organisation(pdf: bytes, signing_dir: Path, agency: str) -> str:
    """The O of the certificate that signed ``pdf``, once the signature holds for ``agency``."""
    status = await validated(pdf, trusting(signing_dir, agency))
    assert status.bottom_line, status.summary()
    assert status.intact
    assert status.trusted
    return str(status.signing_cert.subject.native["organization_name"])
