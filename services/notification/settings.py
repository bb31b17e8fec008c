"""How the notification service reaches citizens: SMTP, SMS, retries, how its letters are signed.

Everything comes from the environment with local defaults that point at the development
mailbox (``python -m infra.mailbox``, which ``make run`` starts). Credentials are only ever
read from the environment.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from services.notification.delivery import (
    EMAIL,
    SMS,
    Channel,
    EmailChannel,
    HttpSmsGateway,
    RetryPolicy,
    SmsChannel,
    SmtpSettings,
)
from services.notification.document_signing import LetterSigner
from services.notification.domain.notices import DEFAULT_PLACE
from services.notification.letter_press import LetterPress
from services.runtime.settings import ConfigurationError

T = TypeVar("T", int, float)

MAX_LETTER_WORKERS = 64
"""More letter workers than this is a typo, not a machine."""


@dataclass(frozen=True, kw_only=True)
class DeliverySettings:
    """Channels and retry policy of the notification service."""

    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    sms_gateway_url: str | None = None
    """Unset: no SMS channel (no delivery rows are created for it)."""
    sms_gateway_token: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    letter_place: str = DEFAULT_PLACE
    letter_signing_dir: Path | None = None
    """Each agency's key, certificate and chain to sign its letters with (``LETTER_SIGNING_DIR``)."""
    letter_workers: int = 0
    """Processes that render and sign letters (``LETTER_WORKERS``, default one per core); 0: the
    service's own process."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DeliverySettings:
        """Read ``SMTP_*``, ``SMS_GATEWAY_*``, ``DELIVERY_*`` and ``LETTER_*``."""
        env = os.environ if environ is None else environ
        smtp = SmtpSettings(
            host=env.get("SMTP_HOST") or "127.0.0.1",
            port=_number(env, "SMTP_PORT", 8025, int),
            sender=env.get("SMTP_FROM") or "mot-cua@tan-an.example.vn",
            username=env.get("SMTP_USERNAME") or None,
            password=env.get("SMTP_PASSWORD") or None,
            starttls=_flag(env, "SMTP_STARTTLS"),
            timeout=_number(env, "SMTP_TIMEOUT_SECONDS", 30.0, float),
        )
        if "@" not in smtp.sender:
            raise ConfigurationError(f"SMTP_FROM={smtp.sender!r} is not an e-mail address")
        retry = RetryPolicy(
            max_attempts=_number(env, "DELIVERY_MAX_ATTEMPTS", 8, int),
            base_seconds=_number(env, "DELIVERY_BACKOFF_SECONDS", 30.0, float),
            cap_seconds=_number(env, "DELIVERY_BACKOFF_MAX_SECONDS", 3600.0, float),
            lease_seconds=_number(env, "DELIVERY_LEASE_SECONDS", 300.0, float),
        )
        if retry.max_attempts < 1:
            raise ConfigurationError("DELIVERY_MAX_ATTEMPTS must be at least 1")
        if retry.lease_seconds < 2 * smtp.timeout:
            # A lease shorter than a send could take would let a second worker send it again.
            raise ConfigurationError("DELIVERY_LEASE_SECONDS must be at least twice SMTP_TIMEOUT_SECONDS")
        letter_workers = _number(env, "LETTER_WORKERS", os.cpu_count() or 1, int)
        if not 0 <= letter_workers <= MAX_LETTER_WORKERS:
            raise ConfigurationError(
                f"LETTER_WORKERS={letter_workers}: from 0 (letters in the service's process)"
                f" to {MAX_LETTER_WORKERS}"
            )
        return cls(
            smtp=smtp,
            sms_gateway_url=env.get("SMS_GATEWAY_URL") or None,
            sms_gateway_token=env.get("SMS_GATEWAY_TOKEN") or None,
            retry=retry,
            letter_place=env.get("LETTER_PLACE") or DEFAULT_PLACE,
            letter_signing_dir=Path(env["LETTER_SIGNING_DIR"]) if env.get("LETTER_SIGNING_DIR") else None,
            letter_workers=letter_workers,
        )

    def letter_signer(self, agencies: Collection[str]) -> LetterSigner:
        """The signer of ``agencies``' letters; :class:`ConfigurationError` if it cannot sign them all.

        Any agency of the catalog may issue a letter (an apology, a supplement request): the
        service refuses to start without its certificate rather than dead-letter its first letter.
        """
        if self.letter_signing_dir is None:
            raise ConfigurationError(
                "LETTER_SIGNING_DIR is not set: every letter is signed by the agency that issues it"
                " (make run sets it to .run/trust/letter-signing)"
            )
        signer = LetterSigner.from_directory(self.letter_signing_dir)
        missing = sorted(set(agencies) - signer.agencies)
        if missing:
            raise ConfigurationError(
                f"LETTER_SIGNING_DIR={self.letter_signing_dir} has no certificate for {', '.join(missing)}"
            )
        return signer

    def letter_press(self, agencies: Mapping[str, str]) -> LetterPress:
        """The press of ``agencies``' letters (names as letters print them), on ``letter_workers``.

        :class:`ConfigurationError` when an agency has no certificate (see :meth:`letter_signer`).
        """
        return LetterPress(
            self.letter_signer(agencies),
            place=self.letter_place,
            issuers=agencies,
            workers=self.letter_workers,
            signing_dir=self.letter_signing_dir,
        )

    def channels(self) -> dict[str, Channel]:
        """The enabled channels: e-mail always, SMS when a gateway is configured."""
        channels: dict[str, Channel] = {EMAIL: EmailChannel(self.smtp)}
        if self.sms_gateway_url:
            channels[SMS] = SmsChannel(HttpSmsGateway(self.sms_gateway_url, token=self.sms_gateway_token))
        return channels


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigurationError(f"{name}={value!r}: use true or false")


def _number(env: Mapping[str, str], name: str, default: T, kind: type[T]) -> T:
    text = env.get(name)
    if not text:
        return default
    try:
        return kind(text)
    except ValueError as exc:
        raise ConfigurationError(f"{name}={text!r} is not a number") from exc
