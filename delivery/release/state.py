"""Typed values that pass between the release's steps: the plan, switches, watches, checks, outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from delivery.release.restore import RestoreReport


class ImageRef(BaseModel):
    """One service's image: the tag people read and the digest the cluster runs."""

    by_digest: str
    by_tag: str
    digest: str


class ReleasePlan(BaseModel):
    """What a release carries: the tag, the services in dependency groups, their images, what runs now."""

    tag: str
    services: list[str]
    groups: list[list[str]]
    images: dict[str, ImageRef]
    previous: dict[str, str | None]


class CheckRow(BaseModel):
    """One validation or gate line as people read it."""

    check: str
    passed: bool
    detail: str


class GateResult(BaseModel):
    """One quality gate's verdict on this tag's report."""

    gate: str
    required: bool
    verdict: str
    measured: str
    threshold: str
    on_failure: str
    summary: str
    blocks: bool


class SwitchResult(BaseModel):
    """A traffic move that happened: from which color to which, and how long it took."""

    service: str
    from_color: str | None
    to_color: str
    seconds: float
    commit: str | None = None  # gitops: the manifests repository commit that made the switch


class WatchResult(BaseModel):
    """A watch's verdict; `cancelled` when another service's failed check ended it early."""

    service: str
    passed: bool
    reason: str
    checks: int
    failed_checks: int
    cancelled: bool = False


@dataclass
class ProductionOutcome:
    """What production saw: the moves made, the watches, and the restore if there was one."""

    switches: list[SwitchResult] = field(default_factory=list)
    watches: dict[str, WatchResult] = field(default_factory=dict)
    restore: RestoreReport | None = None


class ReleaseSummary(BaseModel):
    """How a release ended: the outcome, why, a row per service (as the summary table shows it), the duration."""

    tag: str
    outcome: str
    detail: str
    services: list[dict[str, str]]
    seconds: float


class RollbackStep(BaseModel):
    """One service of a rollback plan: what to do, from where to where (staging: the revision to undo to)."""

    service: str
    action: str
    from_color: str | None
    to_color: str
    image: str | None = None
    revision: int | None = None


class RollbackPlan(BaseModel):
    target: str
    steps: list[RollbackStep]


class RollbackDone(BaseModel):
    """What rolling one service back did, and how long it took."""

    service: str
    action: str
    from_color: str | None
    to_color: str
    seconds: float = 0.0


class ReleaseFailed(RuntimeError):
    """A production check failed: the release ends, and the restore path puts production back."""
