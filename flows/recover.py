"""The recovery runbook: a release run crashed, was cancelled or was left Running by a dead worker.

Started by a Prefect automation when a release run enters Crashed or Cancelled (a run whose
heartbeats stop is marked Crashed by another automation), or by `tripgen-release recover TAG`.
It reads the release records the dead run left unfinished, restores every service that run
changed, audits `deployment_crashed` and each `rollback_executed`, and sends a critical alert.
"""

from __future__ import annotations

from prefect import flow, get_client, get_run_logger
from prefect.states import Crashed, Failed

from delivery.release.record import ReleaseRecord
from delivery.release.runtime import runtime
from flows.locking import free_lock
from tasks.notifications import alert, send_alert
from tasks.records import audit
from tasks.release_record import ALIVE, restore_production, run_state

def mark_crashed(flow_run_id: str, why: str) -> None:
    """Say on the server what is true: the run's process is gone."""
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Crashed(message=why), force=True)


@flow(name="recover", flow_run_name="recover-{tag}{crashed_flow_run}", log_prints=True)
def recover(tag: str = "", crashed_flow_run: str = "", initiator: str = "automation", force: bool = False) -> dict:
    """Restore production after a release run that can no longer finish; returns what was restored per record.

    Args:
        tag: The release whose unfinished record to recover (default: the records of `crashed_flow_run`).
        crashed_flow_run: The flow run id of the release run that crashed or was cancelled.
        initiator: Who asks (the automation, or the on-call engineer).
        force: Recover a run the server still shows Running or Paused: its worker is known dead (marks it Crashed).
    """
    log = get_run_logger()
    records = runtime().records.find(tag or None, crashed_flow_run or None)
    if crashed_flow_run and run_state(crashed_flow_run) not in ALIVE:
        free_locks_of(crashed_flow_run)  # also when it restored on its way out but died before freeing the lock
    if not records:
        log.info("no unfinished release record for %s: nothing to recover", tag or crashed_flow_run or "any release")
        return {"recovered": []}
    recovered, skipped = [], []
    for record in records:
        state = run_state(record.flow_run_id)
        if state in ALIVE and not force:
            skipped.append(f"{record.name}: its run {record.flow_run_id} is {state}")
            continue
        if state in ALIVE:
            mark_crashed(record.flow_run_id, f"declared dead by {initiator} (tripgen-release recover --force)")
        recovered.append(recover_record(record, state, initiator))
    for line in skipped:
        log.warning("not recovered: %s (pass force=true if its worker is gone)", line)
    if skipped and not recovered:
        return Failed(message="not recovered: " + "; ".join(skipped))
    return {"recovered": recovered, "skipped": skipped}


def free_locks_of(flow_run_id: str) -> None:
    """Free the release lock slots an ended run's records name (a slot already freed is a no-op)."""
    for record in runtime().records.all():
        if record.flow_run_id == flow_run_id and record.lock_lease:
            free_lock(record.lock_lease)


def recover_record(record: ReleaseRecord, state: str | None, initiator: str) -> dict:
    """Audit the crash, restore what the dead run changed, tell people."""
    details = {"record": record.name, "flow_run": record.flow_run_id, "state": state or "unknown", "where": record.where()}
    audit(event="deployment_crashed", actor=initiator, release=record.tag, details=details)
    why = f"release run {record.flow_run_id} ended {state or 'unknown'} with production changes unfinished"
    report = restore_production(record.name, why, initiator, crashed_run=record.flow_run_id)
    if record.lock_lease:
        free_lock(record.lock_lease)
    outcome = {"record": record.name, "flow_run": record.flow_run_id, "complete": report.complete, "restored": report.summary()}
    audit(event="deployment_recovered", actor=initiator, release=record.tag, details=outcome)
    if not report.changed_anything:  # nothing had moved: still a crash people must hear of
        numbers = {"record": record.name, "run": record.flow_run_id, "state": state or "unknown", "production": "untouched"}
        channels = list(runtime().policy.blue_green.notify)
        send_alert(alert(record.tag, "critical", f"{record.tag}: the release run crashed", numbers), channels=channels, open_incident=True)
    return outcome
