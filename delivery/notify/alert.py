"""What a notifier sends (`Alert`), what it reports back (`Delivery`), and how one attempt fails (`DeliveryFailed`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["critical", "high", "medium", "low"]
SENDER = "TripGen release orchestrator"
"""How every message signs itself."""


def format_value(value: float | int | str) -> str:
    """A number as people read it (`0.8`, `12`, `6.25`), anything else as it is."""
    return f"{value:g}" if isinstance(value, float) else str(value)


class Alert(BaseModel):
    """One alert about a release: what happened, the numbers that triggered it, and the link to the flow run.

    `escalated_to` and `recipients` (channel → addresses) are set on a re-notification by the escalation.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    release: str = Field(min_length=1, description="the release tag, e.g. v1.3.0")
    severity: Severity
    title: str = Field(min_length=1)
    numbers: dict[str, float | int | str] = Field(default_factory=dict)
    run_url: str | None = Field(default=None, description="the Prefect flow run in the UI")
    service: str | None = None
    escalated_to: str | None = None
    recipients: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @property
    def headline(self) -> str:
        return f"Escalated to {self.escalated_to}: {self.title}" if self.escalated_to else self.title

    @property
    def dedup_key(self) -> str:
        """One PagerDuty incident per release."""
        return release_dedup_key(self.release)

    def facts(self) -> list[tuple[str, str]]:
        """(label, value) rows every channel shows: release, severity, service, then the numbers."""
        rows = [("Release", self.release), ("Severity", self.severity)]
        if self.service:
            rows.append(("Service", self.service))
        return rows + [(name, format_value(value)) for name, value in self.numbers.items()]


def release_dedup_key(release: str) -> str:
    return f"tripgen-release/{release}"


@dataclass(frozen=True)
class Delivery:
    """The outcome of sending one alert on one channel; `detail` never holds a secret."""

    notifier: str
    delivered: bool
    attempts: int
    detail: str


class DeliveryFailed(Exception):
    """One attempt failed; `retryable` says whether another may succeed, `retry_after` how long to wait first."""

    def __init__(self, detail: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after


class Notifier(Protocol):
    """One channel: `send` makes one attempt and returns the Delivery, or raises DeliveryFailed."""

    channel: str

    def send(self, alert: Alert) -> Delivery: ...
