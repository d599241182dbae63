"""The diagnosis (SPEC §8) as the run shows it: a markdown artifact, and the bundle kept beside the audit log."""

from __future__ import annotations

from datetime import datetime, timezone

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from delivery.release.retrying import LOCAL_STEP
from delivery.release.runtime import runtime
from tasks.records import artifact_key


@task(name="diagnose", task_run_name="diagnose {services} ({environment})", **LOCAL_STEP)
def diagnose_services(environment: str, services: list[str]) -> str:
    """Collect the diagnosis of `services`, publish it as a markdown artifact; returns the bundle's path."""
    rt = runtime()
    namespace = rt.policy.environments[environment].namespace
    diagnosis = rt.diagnoser.collect(namespace, services, datetime.now(timezone.utc))
    bundle = diagnosis.write_bundle(rt.settings.diagnostics_dir())
    create_markdown_artifact(diagnosis.markdown() + f"\n\nBundle: `{bundle}` (kept 30 days)\n",
                             key=artifact_key(f"diagnosis-{environment}-{'-'.join(services)}"),
                             description=f"Diagnosis of {', '.join(services)} in {environment}")
    get_run_logger().info("diagnosis of %s in %s: %s", ", ".join(services), environment, bundle)
    return str(bundle)


def diagnose_after(services: list[str], why: str) -> None:
    """The restore path's own diagnosis of the services it restored; a diagnosis that fails never fails the restore."""
    if not services:
        return
    try:
        diagnose_services("production", services)
    except Exception as error:  # noqa: BLE001 - diagnostics are help for the SRE, the restore's outcome stands
        get_run_logger().warning("no diagnosis of %s after %s: %s: %s", ", ".join(services), why, type(error).__name__, error)
