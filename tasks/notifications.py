"""Tell people (R-ALERT, R-INC): one task per alert, whose deliveries show in the UI; it never fails a run."""

from __future__ import annotations

from dataclasses import asdict

from prefect import get_run_logger, task
from prefect.runtime import flow_run

from delivery.notify import Alert
from delivery.release.retrying import LOCAL_STEP
from delivery.release.runtime import runtime


def alert(release: str, severity: str, title: str, numbers: dict | None = None, service: str | None = None) -> Alert:
    """An alert about this flow run, linking to it in the Prefect UI."""
    return Alert(release=release, severity=severity, title=title, numbers=numbers or {}, service=service, run_url=flow_run.ui_url)


@task(name="notify", task_run_name="notify: {message.title}", **LOCAL_STEP)
def send_alert(message: Alert, channels: list[str] | None = None, open_incident: bool = False) -> list[dict]:
    """Send to `channels` (or by severity), optionally open a Jira incident; undelivered ones are logged, not raised."""
    dispatcher = runtime().dispatcher
    deliveries = dispatcher.send_to(channels, message) if channels else dispatcher.notify(message)
    if open_incident:
        deliveries.append(dispatcher.open_incident(message))
    log = get_run_logger()
    for delivery in deliveries:
        (log.info if delivery.delivered else log.warning)("%s: %s", delivery.notifier, delivery.detail or "delivered")
    return [asdict(delivery) for delivery in deliveries]
