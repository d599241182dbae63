"""Markdown people read in the Prefect UI: the approval form's description and the release summary."""

from __future__ import annotations

from delivery.approvals import ApprovalRound
from delivery.release.state import CheckRow, GateResult, ProductionOutcome, ReleasePlan


def markdown_table(rows: list[dict]) -> str:
    """A markdown table of `rows` (their first row's keys as the head); `_none_` when there are none."""
    if not rows:
        return "_none_\n"
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(row.get(h, "")).replace("|", "\\|") for h in head) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def approval_context(plan: ReleasePlan, gates: list[GateResult], staging: list[CheckRow], initiator: str, reason: str) -> str:
    """What an approver needs to decide: the plan, the gate results and staging's results."""
    images = [{"service": name, "image": i.by_tag, "digest": i.digest[:19] + "…"} for name, i in plan.images.items()]
    gate_rows = [g.model_dump(include={"gate", "verdict", "measured", "threshold"}) for g in gates]
    order = " → ".join(", ".join(group) for group in plan.groups)
    return (
        f"## Approve release {plan.tag} to production?\n\n"
        f"Started by **{initiator}**" + (f": {reason}" if reason else "") + f"\n\nOrder: {order}\n\n"
        f"### Images\n{markdown_table(images)}\n### Quality gates\n{markdown_table(gate_rows)}\n"
        f"### Staging\n{markdown_table([r.model_dump() for r in staging])}\n"
    )


def approval_status(approvals: ApprovalRound) -> str:
    """Who has approved so far, what was refused, and how many approvals are still needed."""
    lines = [f"\n### Approvals: {len(approvals.accepted)} of {approvals.rule.approvers}"]
    lines += [f"- {d.outcome}: {d.reason}" for d in approvals.decisions]
    lines.append(
        f"\nEligible: members of {', '.join(approvals.eligible_groups())}; "
        f"{approvals.initiator} (the initiator) may {'' if approvals.policy.initiator_may_approve else 'not '}approve."
    )
    return "\n".join(lines) + "\n"


def service_rows(plan: ReleasePlan, production: ProductionOutcome | None) -> list[dict]:
    """Per service, as the summary table shows it: digest, switch time, watch checks and verdict."""
    production = production or ProductionOutcome()
    switches = {s.service: s for s in production.switches}
    restored = {s.service for s in production.restore.services if s.restored} if production.restore else set()
    rows = []
    for name in plan.services:
        switch, watch = switches.get(name), production.watches.get(name)
        verdict = "switched back" if name in restored else "live" if switch and watch and watch.passed else "not switched"
        rows.append(
            {
                "service": name,
                "digest": plan.images[name].digest,
                "switch": f"{switch.from_color} -> {switch.to_color} in {switch.seconds:.3f}s" if switch else "",
                "checks": f"{watch.checks} ({watch.failed_checks} failed)" if watch else "",
                "verdict": verdict,
            }
        )
    return rows


def release_summary(tag: str, outcome: str, detail: str, services: list[dict], seconds: float) -> str:
    """The summary artifact: outcome, per-service rows and duration (for the KPIs)."""
    return f"# Release {tag}: {outcome}\n\n{detail}\n\nDuration: {seconds:.0f}s\n\n{markdown_table(services)}"
