"""Shared pieces of the notification tests: a sample alert, a settable clock, and a real local SMTP server with STARTTLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from delivery.notify import Alert
from delivery.policy.loader import load_policy
from tests.conftest import REPO

RUN_URL = "https://prefect.tripgen.com/runs/flow-run/0b6c2d3e-4f50-4a1b-8c9d-0e1f2a3b4c5d"


@pytest.fixture
def alert() -> Alert:
    return Alert(
        release="v1.3.0",
        severity="critical",
        title="Error rate above 5% after the switch",
        numbers={"error rate %": 6.25, "p95 response time s": 12.0, "requests": 4000},
        run_url=RUN_URL,
        service="trip-service",
    )


@pytest.fixture(scope="session")
def policy():
    return load_policy(REPO / "policies" / "tripgen.yaml")


class Sleeps(list):
    """An injectable `sleep` that records each wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


class FakeClock:
    """An injectable clock: it says `now` until told to move."""

    def __init__(self) -> None:
        self.now = dt.datetime(2025, 3, 4, 2, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, by: dt.timedelta) -> None:
        self.now += by


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    over_tls: bool
    login: str | None


@dataclass
class Inbox:
    """The SMTP server's side: what it received and which account it accepts."""

    user: str = "alerts@tripgen.com"
    password: str = "correct horse battery staple"
    refuse_logins: bool = False
    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        message = message_from_bytes(envelope.content, policy=email_policy.default)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, session.ssl is not None, login))
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        accepted = (
            not self.refuse_logins
            and isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.user
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=accepted, handled=False, auth_data=auth_data if accepted else None)


@dataclass
class SmtpServer:
    host: str
    port: int
    inbox: Inbox


def _serve(inbox: Inbox, tls: ssl.SSLContext | None):
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=tls,
        require_starttls=tls is not None,
        authenticator=inbox.authenticate,
        auth_require_tls=tls is not None,
    )
    controller.start()
    return controller


@pytest.fixture
def smtp_server(certificate):
    """An aiosmtpd server on 127.0.0.1 that requires STARTTLS and a login."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(*certificate)
    inbox = Inbox()
    controller = _serve(inbox, tls)
    yield SmtpServer(controller.hostname, controller.port, inbox)
    controller.stop()


@pytest.fixture
def plain_smtp_server():
    """An aiosmtpd server that offers no STARTTLS."""
    inbox = Inbox()
    controller = _serve(inbox, None)
    yield SmtpServer(controller.hostname, controller.port, inbox)
    controller.stop()
