"""The scheduled escalation check (R-ALERT): every minute, re-notify the alerts nobody acknowledged in time.

Thin on purpose: the decision is delivery.notify.escalation's; this flow only wires the worker's runtime.
"""

from __future__ import annotations

from dataclasses import asdict

from prefect import flow

from delivery.notify.escalation import escalate_open_alerts
from delivery.release.runtime import runtime


@flow(name="escalate", log_prints=True)
def escalate_alerts() -> list[dict]:
    """Escalate each open alert past its `escalate_after` whose PagerDuty incident is not acknowledged or resolved."""
    worker = runtime()
    sent = escalate_open_alerts(worker.alert_log, worker.incidents, worker.dispatcher)
    for escalation in sent:
        print(f"escalated '{escalation.title}' ({escalation.release}, {escalation.severity}) to {escalation.level}: "
              f"delivered on {', '.join(escalation.delivered) or 'no channel'}")
    return [asdict(escalation) for escalation in sent]
