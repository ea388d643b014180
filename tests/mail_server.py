"""A real SMTP server for the email tests: aiosmtpd on a local port, with STARTTLS (a certificate from a throwaway
CA made by trustme) and AUTH, keeping every message that arrived as a parsed `email.message.EmailMessage`.

It can be told to answer the next DATA commands with a reply of the test's choosing (a 451 to make the sender
retry, a 550 for a refused mailbox), or to drop the connection mid-DATA, the way a crashed sender's server sees it.
"""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.ports import free_port

USER, PASSWORD = "salesintel", "s3cret-smtp"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class MailHandler:
    received: list[Received] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    """Replies for the next DATA commands, in order (e.g. "451 4.3.0 try again"); empty: accept."""
    refuse: dict[str, str] = field(default_factory=dict)
    """address → the reply its RCPT gets (e.g. "550 5.1.1 no such mailbox")."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.replies:
                return self.replies.pop(0)
            parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


@dataclass
class MailServer:
    controller: Controller
    handler: MailHandler
    ca_file: Path
    port: int

    def messages(self) -> list[EmailMessage]:
        with self.handler.lock:
            return [r.message for r in self.handler.received]

    def stop(self) -> None:
        self.controller.stop()


def start_mail_server(folder: Path, starttls: bool = True) -> MailServer:
    """An SMTP server on a free local port; with `starttls`, it requires STARTTLS and AUTH (LOGIN/PLAIN) before
    mail, and `ca_file` is the CA that signed its certificate."""
    ca = trustme.CA()
    certificate = ca.issue_cert("localhost", "127.0.0.1")
    ca_file = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    handler = MailHandler()
    kwargs = {}
    if starttls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certificate.configure_cert(context)
        kwargs = {
            "tls_context": context,
            "require_starttls": True,
            "authenticator": _authenticator,
            "auth_required": True,
            "auth_require_tls": True,
        }
    port = free_port()  # aiosmtpd checks it is up by connecting to the port it was given
    controller = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="localhost", **kwargs)
    controller.start()
    return MailServer(controller, handler, ca_file, port)
