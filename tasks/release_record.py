"""The release record's steps: open it before production changes, mark phases, close it, and the restore path."""

from __future__ import annotations

from prefect import get_client, get_run_logger, task
from prefect.runtime import flow_run

from delivery.gitops.changes import ChangeNote, noted
from delivery.release.lock_guard import LOCK_GUARDS
from delivery.release.record import Phase, ServiceRecord, State, new_record, record_name
from delivery.release.restore import RestoreReport, ServiceRestore
from delivery.release.retrying import CLUSTER_STEP, LOCAL_STEP
from delivery.release.runtime import region_details, runtime
from delivery.release.state import ReleasePlan
from tasks.diagnosis import diagnose_after
from tasks.notifications import alert, send_alert
from tasks.retry import transient_only


ALIVE = {"SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"}


def run_url() -> str:
    """This flow run's page in the Prefect UI (its id when no UI URL is configured)."""
    return flow_run.ui_url or f"flow run {flow_run.id}"


def run_state(flow_run_id: str) -> str | None:
    """The state type of a flow run (None when the server does not know it)."""
    with get_client(sync_client=True) as client:
        try:
            return client.read_flow_run(flow_run_id).state_type.value
        except Exception:  # noqa: BLE001 - a run the server never had (or lost) is not alive
            return None


def refuse_while_a_dead_run_left_a_record() -> None:
    """Before the lock: refuse at once when a run that has ended left its record unfinished (a live one holds the lock)."""
    records = runtime().records
    dead = [r for r in records.unfinished() if run_state(r.flow_run_id) not in ALIVE]
    if dead:
        records.refuse_while_unfinished(str(flow_run.id), among=dead)


@task(name="open release record", retry_condition_fn=transient_only, **CLUSTER_STEP)
def open_release_record(plan: ReleasePlan, strategy: str, initiator: str, lock_lease: str | None) -> str:
    """Write each service's rollback target to the cluster; refused while another release's record is unfinished."""
    rt = runtime()
    services = [
        ServiceRecord(service=name, previous_color=rt.blue_green.live_color(name), previous_image=plan.previous[name],
                      new_image=plan.images[name].by_digest)
        for name in plan.services
    ]
    name = record_name(plan.tag, str(flow_run.id))
    record = rt.records.open(new_record(name, plan.tag, strategy, str(flow_run.id), initiator, services, lock_lease))
    namespace = rt.policy.environments["production"].namespace
    get_run_logger().info("release record: kubectl get configmap -n %s %s -o jsonpath='{.data.record\\.json}'", namespace, name)
    return record.name


@task(name="record phase", task_run_name="record {service}: {phase}", retry_condition_fn=transient_only, **CLUSTER_STEP)
def record_phase(record: str, service: str, phase: Phase) -> None:
    """Write the step about to happen; refused once this run lost the release lock."""
    runtime().records.mark(record, service, phase)


def ensure_lock_held() -> None:
    """Raise LockLost when this run's release lock was lost (flows/locking.py's guard noticed)."""
    LOCK_GUARDS.ensure_held(str(flow_run.id))


@task(name="close release record", task_run_name="close release record: {state}", retry_condition_fn=transient_only, **CLUSTER_STEP)
def close_release_record(record: str, state: State, detail: str) -> None:
    runtime().records.finish(record, state, detail)


@task(name="restore production", task_run_name="restore production ({record})", **LOCAL_STEP)
def restore_production(record: str, reason: str, actor: str, crashed_run: str | None = None) -> RestoreReport:
    """The one restore path: every changed service back to its rollback target, last changed first.

    Each restored service is audited `rollback_executed` at once; then the alert goes out (the
    policy's production channels and a Jira incident). A service that cannot be restored is named
    with where it is left, and pages.
    """
    rt, log = runtime(), get_run_logger()
    found = rt.records.get(record)
    extra = {"crashed_flow_run": crashed_run} if crashed_run else {}

    def audited(step: ServiceRestore) -> None:
        if step.restored and not step.changed:
            log.info("%s: %s", step.service, step.action)
            return
        event = "rollback_executed" if step.restored else "rollback_failed"
        commit = {"commit": rt.gitops.last_commit()} if rt.gitops else {}  # the revert commit, in gitops mode
        rt.audit.append(event, actor, found.tag, flow_run_id=str(flow_run.id), service=step.service, action=step.action,
                        seconds=step.seconds, reason=reason, record=record, **extra, **commit, **region_details())
        (log.warning if step.restored else log.error)("%s: %s", step.service, step.action)

    with noted(ChangeNote(found.tag, run_url(), restoring=True, log=log.info)):  # gitops: revert commits
        report = rt.restorer.restore(found, on_restored=audited)
    for reverted in report.database.reverted:
        rt.audit.append("migration_reverted", actor, found.tag, flow_run_id=str(flow_run.id), reason=reason, record=record,
                        **extra, **reverted.audited())
        log.warning("database: %s reverted in %.2fs", reverted.version, reverted.seconds)
    if report.database.problem:
        rt.audit.append("rollback_failed", actor, found.tag, flow_run_id=str(flow_run.id), service="database",
                        action=report.database.line(), reason=reason, record=record, **extra)
        log.error(report.database.line())
    if report.changed_anything:
        numbers = {"reason": reason, "restored": report.summary(), "record": record}
        if report.complete:
            title = f"{found.tag} rolled back in production"
        else:
            title = f"{found.tag} could NOT be fully restored: " + "; ".join(report.left())
        channels = list(dict.fromkeys([*rt.policy.blue_green.notify, *(rt.policy.canary.notify if found.strategy == "canary" else [])]))
        send_alert(alert(found.tag, "critical", title, numbers), channels=channels, open_incident=True)
        diagnose_after([step.service for step in report.services if step.changed], f"the restore of {found.tag}")
    return report
