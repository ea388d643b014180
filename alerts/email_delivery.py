"""Email delivery: outbox messages addressed `email:<address>` go out over SMTP, with the outbox's guarantees.

The outbox claims each message before the SMTP conversation and marks it sent after the server accepted it (250
after DATA), exactly as for Slack. SMTP's own rule covers a crash before that: a server discards a message whose
DATA never ended, so the requeued message arrives once. The one window left is the moment between the server's
250 and the outbox's commit: a crash there sends the message again, with the same Message-ID (fixed by the outbox
row), which mail readers show once. Nothing can be looked up afterwards, unlike Slack's history.

Failures are sorted like Slack's: a 4xx reply, a refused or dropped connection (a TLS handshake cut short too) or a
timeout is transient (retried with backoff); a 5xx reply (unknown mailbox, authentication refused), a certificate
that is not trusted, a server without STARTTLS when it is required, or a setup the client refuses (no usable login
method, a password over an unencrypted connection) is permanent (failed and reported on the ops channel).
"""

from __future__ import annotations

import base64
import hashlib
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from zoneinfo import ZoneInfo

from salesintel.alerts.delivery import PermanentError, TransientError
from salesintel.alerts.email_render import build_email
from salesintel.alerts.outbox import OutboxMessage
from salesintel.alerts.routing import EMAIL_PREFIX
from salesintel.alerts.settings import AlertsSettings


def message_id(row_id: int, dedupe_key: str, sender: str) -> str:
    """One Message-ID per outbox row, the same on every attempt."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "salesintel.localhost"
    digest = hashlib.sha256(dedupe_key.encode()).hexdigest()[:16]
    return f"<salesintel.{row_id}.{digest}@{domain}>"


@dataclass
class EmailSender:
    """Sends one message per SMTP connection: digests are few, and a fresh connection has no stale state."""

    settings: AlertsSettings
    quiet_hours_apply = False  # digests are scheduled in each recipient's zone already (`alerts.jobs.digest_jobs`)
    password: str | None = None
    """SALESINTEL_SMTP_PASSWORD (never from config)."""
    connect: Callable[..., smtplib.SMTP] = smtplib.SMTP
    """The SMTP class (a parameter so a test can count connections; the real one otherwise)."""

    def timezone_of(self, target: str) -> ZoneInfo | None:
        """Digests are scheduled in the recipient's zone already (`alerts.jobs`); nothing is held at delivery."""
        return None

    def find_delivered(self, message: OutboxMessage) -> None:
        """SMTP keeps no history to look in: an orphan is sent again (see the module docstring)."""
        return None

    def charts_follow(self, message: OutboxMessage) -> bool:
        """Embedded in the email (inline images)."""
        return False

    def send(self, message: OutboxMessage) -> tuple[str | None, str | None]:
        charts = [{**a, "png": base64.b64decode(a["png"])} for a in message.attachments]
        mid = message_id(message.id, message.dedupe_key, self.settings.email.sender)
        recipient = message.target.removeprefix(EMAIL_PREFIX)
        return "email", self.deliver(recipient, message.text, message.blocks, charts, mid)

    def deliver(self, recipient: str, text: str, blocks: list[dict], charts: list[dict], mid: str) -> str:
        """Write and send one email (charts: name, title, alt and png bytes); returns its Message-ID, or raises
        PermanentError / TransientError as the module docstring sorts them."""
        config = self.settings.email
        try:
            email = build_email(
                sender=config.sender,
                recipient=recipient,
                text=text,
                blocks=blocks,
                charts=charts,
                message_id=mid,
            )
        except ValueError as error:  # an address the email policy refuses (a line break in it, say)
            raise PermanentError(f"cannot write an email to {recipient!r}: {error}") from None
        smtp = config.smtp
        try:
            context = _tls_context(smtp.ca_file) if smtp.starttls else None
        except (OSError, ssl.SSLError) as error:
            raise PermanentError(f"cannot use alerts.email.smtp.ca_file {smtp.ca_file}: {error}") from None
        server = None
        try:
            server = self.connect(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
            if smtp.starttls:
                server.ehlo_or_helo_if_needed()
                if not server.has_extn("starttls"):
                    raise PermanentError(f"{smtp.host}:{smtp.port} does not offer STARTTLS (alerts.email.smtp)")
                server.starttls(context=context)
                server.ehlo()
            if smtp.username:
                if not self.password:
                    raise PermanentError("alerts.email.smtp.username is set but SALESINTEL_SMTP_PASSWORD is not")
                server.login(smtp.username, self.password)
            server.send_message(email)
        except smtplib.SMTPRecipientsRefused as error:
            code, reply = next(iter(error.recipients.values()))
            raise _by_code(code, f"{recipient} refused: {_text(reply)}") from None
        except smtplib.SMTPResponseException as error:  # also SMTPConnectError: a 421 greeting is "try later"
            raise _by_code(error.smtp_code, f"SMTP {error.smtp_code}: {_text(error.smtp_error)}") from None
        except ssl.SSLCertVerificationError as error:
            raise PermanentError(f"the certificate of {smtp.host}:{smtp.port} is not trusted: {error}") from None
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError) as error:
            raise TransientError(f"the TLS handshake with {smtp.host}:{smtp.port} was cut short: {error}") from None
        except ssl.SSLError as error:  # no protocol or cipher in common: setup, not luck
            raise PermanentError(f"TLS with {smtp.host}:{smtp.port} failed: {error}") from None
        except smtplib.SMTPServerDisconnected as error:
            raise TransientError(f"the mail server {smtp.host}:{smtp.port} closed the connection: {error}") from None
        except smtplib.SMTPException as error:  # the client's own refusals (no usable AUTH method, ...): setup
            raise PermanentError(f"SMTP with {smtp.host}:{smtp.port}: {error}") from None
        except (TimeoutError, OSError) as error:  # refused, reset, a TLS handshake cut short, a timeout
            raise TransientError(f"cannot reach the mail server {smtp.host}:{smtp.port}: {error}") from None
        finally:
            if server is not None:
                _close(server)
        return mid


def _close(server: smtplib.SMTP) -> None:
    """QUIT, whatever it answers: once DATA was accepted the message is the server's, and a failed goodbye must
    neither send it again nor call it failed."""
    try:
        server.quit()
    except (smtplib.SMTPException, OSError):
        server.close()


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


def _by_code(code: int, what: str) -> Exception:
    return TransientError(what) if 400 <= code < 500 else PermanentError(what)


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


@dataclass
class SenderByTarget:
    """One sender for the Deliverer: `email:` targets go by SMTP, everything else to Slack (or the terminal)."""

    default: object
    email: EmailSender | None = None

    @property
    def quiet_hours_apply(self) -> bool:
        return self.default.quiet_hours_apply

    def _for(self, target: str):
        if not target.startswith(EMAIL_PREFIX):
            return self.default
        if self.email is None:
            raise PermanentError("email is not enabled (alerts.email.enabled)")
        return self.email

    def send(self, message: OutboxMessage) -> tuple[str | None, str | None]:
        return self._for(message.target).send(message)

    def find_delivered(self, message: OutboxMessage) -> tuple[str | None, str | None] | None:
        return self._for(message.target).find_delivered(message)

    def charts_follow(self, message: OutboxMessage) -> bool:
        return self._for(message.target).charts_follow(message)

    def timezone_of(self, target: str) -> ZoneInfo | None:
        return self._for(target).timezone_of(target)


def with_email(default, settings: AlertsSettings, smtp_password: str | None) -> SenderByTarget:
    """`default` for Slack targets, plus SMTP for email ones when `alerts.email.enabled`."""
    return SenderByTarget(default, EmailSender(settings, smtp_password) if settings.email.enabled else None)
