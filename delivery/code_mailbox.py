"""A local SMTP server that keeps what it receives (aiosmtpd): where the demo and the tests read approval codes,
as approvers read theirs from their mail."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from delivery.localdb import free_port

CODE_LINE = re.compile(r"^Your code: ([A-Z2-7-]+)", re.MULTILINE)
SENDER, ALERTS = "tripgen-release@tripgen.local", "release-alerts@tripgen.local"


@dataclass(frozen=True)
class Mail:
    to: tuple[str, ...]
    message: EmailMessage

    @property
    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()


class CodeMailbox:
    """An SMTP server on 127.0.0.1 (no TLS, no login: loopback only) keeping every mail; `code` waits for one."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self._arrived = threading.Condition()
        self._controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, _server, _session, envelope) -> str:  # aiosmtpd's handler hook
        mail = Mail(tuple(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=email_policy.default))
        with self._arrived:
            self.mails.append(mail)
            self._arrived.notify_all()
        return "250 OK"

    def __enter__(self) -> CodeMailbox:
        self._controller.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._controller.stop()

    def settings(self) -> dict[str, str]:
        """The TRIPGEN_SMTP_* environment of a worker that mails through this server (alerts to ALERTS)."""
        return {"TRIPGEN_SMTP_HOST": "127.0.0.1", "TRIPGEN_SMTP_PORT": str(self._controller.port),
                "TRIPGEN_SMTP_FROM": SENDER, "TRIPGEN_SMTP_TO": ALERTS, "TRIPGEN_SMTP_STARTTLS": "false"}

    def code(self, address: str, flow_run_id: str, timeout: float = 60, skip: int = 0) -> str:
        """The code in the newest mail to `address` about the run, once there are more than `skip` of them."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(found := self.codes(address, flow_run_id)) <= skip:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no approval code for {address} about run {flow_run_id} within {timeout:g}s")
                self._arrived.wait(left)
            return found[-1]

    def codes(self, address: str, flow_run_id: str) -> list[str]:
        """Every code mailed to `address` about the run, oldest first."""
        return [m.group(1) for mail in list(self.mails) if address in mail.to and flow_run_id in mail.text
                for m in [CODE_LINE.search(mail.text)] if m]
