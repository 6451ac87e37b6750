"""How outbox messages leave: channels (email, webhook, ...) and email backends.

Channels are a registry keyed by `OutboxMessage.channel`. A channel is a callable
`deliver(message, settings) -> None` that raises `PermanentFailure` (give up now) or any other
exception (retry with back-off). Register one with:

    from service.jobs.delivery import register_channel

    @register_channel("webhook")
    def deliver_webhook(message, settings): ...

The worker only claims messages whose channel has a handler, so rows of a channel nobody has
registered yet (e.g. `webhook` before FHIR webhook delivery exists) wait untouched.

Email goes through the backend named by settings EMAIL_BACKEND: `log` (the demo: logs the
topic and recipient only), `smtp` (SMTP_HOST:SMTP_PORT, MAIL_FROM) or `notify` (GOV.UK Notify
REST API; NOTIFY_API_KEY and a template with `subject` and `body` personalisation fields,
whose id is NOTIFY_TEMPLATE_ID).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import smtplib
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import requests

from models import OutboxMessage

log = logging.getLogger(__name__)

Channel = Callable[[OutboxMessage, Any], None]
CHANNELS: dict[str, Channel] = {}

NOTIFY_URL = "https://api.notifications.service.gov.uk/v2/notifications/email"


class PermanentFailure(Exception):
    """Delivery can never succeed (bad address, rejected by the provider): do not retry."""


def register_channel(name: str) -> Callable[[Channel], Channel]:
    def decorate(fn: Channel) -> Channel:
        CHANNELS[name] = fn
        return fn

    return decorate


# --- email backends ---------------------------------------------------------------------------

class EmailBackend:
    def send(self, *, to: str, subject: str, body: str, topic: str) -> None:
        raise NotImplementedError


class LogBackend(EmailBackend):
    """The demo: nothing leaves the machine; only the topic and recipient are logged."""

    sent: list[tuple[str, str]] = []  # (topic, recipient), for the demo and tests

    def send(self, *, to: str, subject: str, body: str, topic: str) -> None:  # noqa: ARG002
        log.info("email %s to %s (log backend: not sent)", topic, to)
        LogBackend.sent.append((topic, to))


class SmtpBackend(EmailBackend):
    def __init__(self, host: str, port: int, sender: str, timeout: float = 15.0):
        self.host, self.port, self.sender, self.timeout = host, port, sender, timeout

    def send(self, *, to: str, subject: str, body: str, topic: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["X-Stepdown-Topic"] = topic
        message.set_content(body)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentFailure("recipient refused by the SMTP server") from exc


class NotifyBackend(EmailBackend):
    """GOV.UK Notify: POST /v2/notifications/email with a JWT signed by the API key's secret."""

    def __init__(self, api_key: str, template_id: str, url: str = NOTIFY_URL, timeout: float = 15.0):
        # A Notify key is "{key name}-{service id (uuid)}-{secret (uuid)}".
        if len(api_key) < 74:
            raise ValueError("NOTIFY_API_KEY is not a GOV.UK Notify API key")
        self.service_id, self.secret = api_key[-73:-37], api_key[-36:]
        self.template_id, self.url, self.timeout = template_id, url, timeout

    def _token(self) -> str:
        """Notify's auth: an HS256 JWT {iss: service id, iat: now} signed with the secret."""

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        claims = b64(json.dumps({"iss": self.service_id, "iat": int(time.time())},
                                separators=(",", ":")).encode())
        signature = hmac.new(self.secret.encode(), f"{header}.{claims}".encode(),
                             hashlib.sha256).digest()
        return f"{header}.{claims}.{b64(signature)}"

    def send(self, *, to: str, subject: str, body: str, topic: str) -> None:
        if not self.template_id:
            raise PermanentFailure("NOTIFY_TEMPLATE_ID is not set")
        response = requests.post(
            self.url, timeout=self.timeout,
            headers={"Authorization": f"Bearer {self._token()}"},
            json={"email_address": to, "template_id": self.template_id, "reference": topic,
                  "personalisation": {"subject": subject, "body": body}},
        )
        if response.status_code in (400, 403):
            raise PermanentFailure(f"Notify refused the email ({response.status_code})")
        response.raise_for_status()


def email_backend(settings) -> EmailBackend:
    name = settings.EMAIL_BACKEND
    if name == "smtp":
        return SmtpBackend(settings.SMTP_HOST, settings.SMTP_PORT, settings.MAIL_FROM)
    if name == "notify":
        template = settings.extra.get("NOTIFY_TEMPLATE_ID") or os.environ.get(
            "NOTIFY_TEMPLATE_ID", "")
        return NotifyBackend(settings.NOTIFY_API_KEY, template)
    return LogBackend()


@register_channel("email")
def deliver_email(message: OutboxMessage, settings) -> None:
    payload = json.loads(message.payload)
    email_backend(settings).send(to=message.recipient, subject=payload["subject"],
                                 body=payload["body"], topic=message.topic)
