"""Letters are PAdES-signed by their issuing agency, and a standard validator (pyHanko's) agrees.

Real keys and certificates (a test CA per agency, as ``make run`` makes them), real signatures,
validated by ``pyhanko.sign.validation`` trusting one agency's CA and nothing else.
"""

from __future__ import annotations

import io
import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.misc import PdfReadError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.status import SignatureCoverageLevel

from contracts.agencies import LAND_REGISTRY, NOTIFICATION, ONE_STOP, TAX
from contracts.envelope import CloudEvent
from contracts.events import DossierEvent, DossierReturned
from contracts.examples import EXAMPLES
from infra.letter_ca import catalog_agencies, issue
from infra.trust import TrustStore
from services.notification import store
from services.notification.document_signing import LetterSigner, NoSigningCertificate, SigningFiles
from services.notification.domain.notices import render
from services.notification.handlers import NoticeWriter
from services.notification.letter_press import LetterPress
from services.notification.settings import DeliverySettings
from services.runtime.consumer import EventRejected
from services.runtime.kafka_access import KafkaAccess
from services.runtime.service import ServiceRuntime
from services.runtime.settings import ConfigurationError, ServiceSettings
from tests.letter_signatures import trusting, validated
from tests.unit.test_letters import apology, pdf_text, rendered

TAX_NAME = "Chi cục Thuế thành phố Tân An"
LAND_NAME = "Chi nhánh Văn phòng Đăng ký đất đai thành phố Tân An"


@pytest.fixture(scope="module")
def signing_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Test CAs and signing certificates for the tax office and the land registry."""
    root = tmp_path_factory.mktemp("letters")
    agencies = catalog_agencies()
    assert (agencies[TAX].name, agencies[LAND_REGISTRY].name) == (TAX_NAME, LAND_NAME)
    for agency in (TAX, LAND_REGISTRY):
        issue(root / "signing", root / "ca", agency, agencies[agency])
    return root / "signing"


@pytest.fixture(scope="module")
def signer(signing_dir: Path) -> LetterSigner:
    return LetterSigner.from_directory(signing_dir)


def subject(cert: asn1_x509.Certificate) -> dict[str, Any]:
    return dict(cert.subject.native)


async def signed_apology(signer: LetterSigner, agency: str = TAX) -> bytes:
    attachment = rendered(apology()).attachment
    assert attachment is not None
    assert attachment.signed_by == TAX
    return await signer.sign(attachment.data, agency=agency, location="Tân An")


async def test_a_signed_apology_verifies_as_the_agency_that_issued_it(
    signer: LetterSigner, signing_dir: Path
) -> None:
    pdf = await signed_apology(signer)
    status = await validated(pdf, trusting(signing_dir, TAX))
    assert status.intact
    assert status.valid
    assert status.trusted
    assert status.bottom_line
    assert status.docmdp_ok  # certified, no changes allowed, none made
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert subject(status.signing_cert) == {
        "country_name": "VN",
        "organization_name": TAX_NAME,
        "common_name": TAX_NAME,
    }
    assert status.signing_cert.issuer.native["common_name"] == f"{TAX_NAME} test CA"
    assert status.signer_reported_dt is not None
    assert abs(status.signer_reported_dt - datetime.now(UTC)) < timedelta(minutes=1)
    # Still the same letter to read.
    assert "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ" in pdf_text(pdf)


async def test_later_letters_reuse_the_first_ones_signature_space_and_still_verify(
    signer: LetterSigner, signing_dir: Path
) -> None:
    first = await signed_apology(signer)
    # The second letter skips pyHanko's dry-run sizing: the space reserved for the first is kept.
    later = [await signed_apology(signer) for _ in range(2)]
    for pdf in (first, *later):
        status = await validated(pdf, trusting(signing_dir, TAX))
        assert status.bottom_line
        assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    (signature,) = PdfFileReader(io.BytesIO(later[-1])).embedded_signatures
    reserved = len(signature.sig_object["/Contents"])
    assert reserved >= len(signature.signed_data.dump())  # the signature fits, with room to spare
    assert {len(pdf) for pdf in later} == {len(first)}


async def test_one_changed_byte_breaks_the_signature(signer: LetterSigner, signing_dir: Path) -> None:
    pdf = await signed_apology(signer)
    # A byte of the document's metadata: inside the signed range, and the file still parses.
    at = pdf.index(b"dossier-routing notification service")
    tampered = pdf[:at] + b"D" + pdf[at + 1 :]
    assert len(tampered) == len(pdf)
    status = await validated(tampered, trusting(signing_dir, TAX))
    assert not status.intact
    assert not status.bottom_line


async def test_any_changed_byte_in_the_signed_range_fails_validation(
    signer: LetterSigner, signing_dir: Path
) -> None:
    pdf = await signed_apology(signer)
    (signature,) = PdfFileReader(io.BytesIO(pdf)).embedded_signatures
    start, length, _, _ = signature.sig_object["/ByteRange"]
    checked = 0
    for at in range(start, start + length, length // 16):
        tampered = bytearray(pdf)
        tampered[at] ^= 0x01
        try:
            status = await validated(bytes(tampered), trusting(signing_dir, TAX))
        except PdfReadError:
            continue  # the change broke the file's syntax: refused before any signature is checked
        assert not status.intact, at
        assert not status.bottom_line, at
        checked += 1
    assert checked >= 8  # most changes leave a readable file whose signature no longer matches


async def test_a_letter_signed_by_another_agency_does_not_pass_as_this_one(
    signer: LetterSigner, signing_dir: Path
) -> None:
    pdf = await signed_apology(signer, agency=LAND_REGISTRY)
    status = await validated(pdf, trusting(signing_dir, TAX))
    assert status.intact  # a sound signature...
    assert not status.trusted  # ...by a certificate the tax office's CA never issued
    assert not status.bottom_line
    assert subject(status.signing_cert)["organization_name"] == LAND_NAME
    assert (await validated(pdf, trusting(signing_dir, LAND_REGISTRY))).bottom_line


async def test_an_agency_without_a_certificate_gets_no_signature(signer: LetterSigner) -> None:
    assert signer.agencies == {TAX, LAND_REGISTRY}
    with pytest.raises(NoSigningCertificate, match="urban_management"):
        await signer.sign(b"%PDF-1.4", agency="urban_management", location="Tân An")


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "letter-worker"])
async def test_the_handler_dead_letters_a_letter_it_cannot_sign(
    signer: LetterSigner, signing_dir: Path, workers: int
) -> None:
    press = LetterPress(signer, workers=workers, signing_dir=signing_dir)
    writer = NoticeWriter(runtime=unstarted_runtime(), press=press)
    try:
        # The result is issued by the desk, which has no certificate here.
        with pytest.raises(EventRejected, match="one_stop"):
            await writer.notice(enveloped(EXAMPLES["vn.gov.dossier.returned.v1"]))
        signed = await writer.notice(enveloped(apology()))
    finally:
        press.close()
    assert signed is not None
    assert signed.attachment is not None
    assert b"/ByteRange" in signed.attachment.data


def enveloped(data: DossierEvent) -> CloudEvent:
    return CloudEvent.wrap(data, source="urn:test", time=datetime.now(UTC))


def test_every_letter_names_the_agency_that_signs_it() -> None:
    # Every event that becomes a PDF letter, the ones added later included.
    letters = {
        name: notice.attachment
        for name, event in EXAMPLES.items()
        if (notice := render(event)) is not None and notice.attachment is not None
    }
    assert {"vn.gov.dossier.apology_issued.v1", "vn.gov.dossier.returned.v1"} <= set(letters)
    for name, attachment in letters.items():
        assert attachment.content_type == "application/pdf", name
        assert attachment.signed_by, name
    assert letters["vn.gov.dossier.returned.v1"].signed_by == ONE_STOP


def test_a_refusal_is_a_letter_with_its_reason() -> None:
    returned = EXAMPLES["vn.gov.dossier.returned.v1"]
    assert isinstance(returned, DossierReturned)
    refusal = returned.model_copy(
        update={
            "outcome": "rejected",
            "summary": "Hồ sơ bị từ chối (land_registry): thửa đất đang tranh chấp",
        }
    )
    notice = render(refusal, issuers={ONE_STOP: "Bộ phận Một cửa - UBND thành phố Tân An"})
    assert notice is not None
    assert notice.attachment is not None
    assert notice.attachment.filename == f"thong-bao-tu-choi-{returned.dossier_id}.pdf"
    text = pdf_text(notice.attachment.data)
    assert "BỘ PHẬN MỘT CỬA - UBND THÀNH PHỐ TÂN AN" in text
    assert "THÔNG BÁO TỪ CHỐI GIẢI QUYẾT HỒ SƠ" in text
    assert "Lý do từ chối: Hồ sơ bị từ chối (land_registry): thửa đất đang tranh chấp." in text
    approved = render(returned)
    assert approved is not None
    assert approved.attachment is not None
    assert approved.attachment.filename == f"thong-bao-ket-qua-{returned.dossier_id}.pdf"
    assert "THÔNG BÁO KẾT QUẢ GIẢI QUYẾT HỒ SƠ" in pdf_text(approved.attachment.data)


def test_an_agency_refusal_is_issued_and_signed_by_that_agency() -> None:
    returned = EXAMPLES["vn.gov.dossier.returned.v1"]
    assert isinstance(returned, DossierReturned)
    refusal = returned.model_copy(
        update={"outcome": "rejected", "summary": "thửa đất đang tranh chấp", "refused_by": "land_registry"}
    )
    issuers = {ONE_STOP: "Bộ phận Một cửa", "land_registry": "Văn phòng Đăng ký đất đai Tân An"}
    notice = render(refusal, issuers=issuers)
    assert notice is not None
    assert notice.attachment is not None
    assert notice.attachment.signed_by == "land_registry"
    assert "VĂN PHÒNG ĐĂNG KÝ ĐẤT ĐAI TÂN AN" in pdf_text(notice.attachment.data)


def test_the_trust_store_makes_a_test_ca_per_agency_once(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "trust")
    agencies = catalog_agencies()
    directory = store.letter_signing_dir(agencies)
    signer = LetterSigner.from_directory(directory)
    assert signer.agencies == set(agencies)
    for agency, info in agencies.items():
        files = SigningFiles.of(directory, agency)
        assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
        assert subject(signer.certificate(agency))["organization_name"] == info.name
    # 66 bytes in UTF-8, over a CN's 64: the CN is the short name, O the full one.
    assert subject(signer.certificate(LAND_REGISTRY))["common_name"] == "Văn phòng Đăng ký đất đai"
    # The CAs' own keys are not in the directory the notification service reads.
    assert not list(directory.glob("*.ca.key.pem"))
    assert len(list((tmp_path / "trust" / "letter-ca").glob("*.ca.key.pem"))) == len(agencies)
    before = SigningFiles.of(directory, TAX).cert.read_bytes()
    store.letter_signing_dir(agencies)
    assert SigningFiles.of(directory, TAX).cert.read_bytes() == before


def test_the_service_refuses_to_start_without_its_agencies_certificates(
    signing_dir: Path, tmp_path: Path
) -> None:
    agencies = catalog_agencies()
    with pytest.raises(ConfigurationError, match="LETTER_SIGNING_DIR is not set"):
        DeliverySettings.from_env({}).letter_signer(agencies)
    with pytest.raises(ConfigurationError, match="holds no"):
        DeliverySettings.from_env({"LETTER_SIGNING_DIR": str(tmp_path)}).letter_signer(agencies)
    with pytest.raises(ConfigurationError, match="no such directory"):
        LetterSigner.from_directory(tmp_path / "absent")
    # The catalog's other agencies (the desk, urban management) have no certificate here.
    with pytest.raises(ConfigurationError, match="no certificate for one_stop, urban_management"):
        DeliverySettings(letter_signing_dir=signing_dir).letter_signer(agencies)
    # A key that is not the certificate's.
    mixed = tmp_path / "mixed"
    shutil.copytree(signing_dir, mixed)
    shutil.copy(SigningFiles.of(signing_dir, LAND_REGISTRY).key, SigningFiles.of(mixed, TAX).key)
    with pytest.raises(ConfigurationError, match="is not the key of the certificate"):
        LetterSigner.from_directory(mixed)
    # A certificate not valid at the time.
    with pytest.raises(ConfigurationError, match="not now"):
        LetterSigner.from_directory(signing_dir, now=datetime.now(UTC) + timedelta(days=6 * 365))


def service_settings() -> ServiceSettings:
    return ServiceSettings(
        service="notification",
        kafka=KafkaAccess(bootstrap_servers="127.0.0.1:1", security_protocol="PLAINTEXT"),
        database_url="postgresql://unused",
        host="127.0.0.1",
        port=0,
    )


def unstarted_runtime() -> ServiceRuntime:
    return ServiceRuntime(settings=service_settings(), agency=NOTIFICATION, migrations=store.MIGRATIONS)
