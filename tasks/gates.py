"""Quality gates (R-GATE) in parallel, each reading its real report; required failures stop the release."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from delivery import gates
from delivery.migrations.gate import check_database_migrations
from delivery.migrations.release import database_dsn
from delivery.release.retrying import HTTP_STEP
from delivery.release.runtime import runtime
from delivery.release.state import GateResult, ReleasePlan
from tasks.records import artifact_key, audit
from tasks.retry import transient_only

GATES = ("unit_tests", "integration_tests", "security_scan", "performance", "code_quality", "database_migrations")


@task(name="quality gate", task_run_name="gate {gate}", retry_condition_fn=transient_only, **HTTP_STEP)
def check_gate(gate: str, tag: str, images: dict[str, str], digests: dict[str, str] | None = None) -> GateResult:
    """Evaluate one gate against this tag's report (a Trivy scan must name the release's `digests`); writes its table artifact."""
    rt = runtime()
    config, root = getattr(rt.policy.quality_gates, gate), rt.reports
    checks = {
        "unit_tests": lambda: gates.check_unit_tests(config, tag, root),
        "integration_tests": lambda: gates.check_integration_tests(config, tag, root),
        "security_scan": lambda: gates.check_security_scan(config, tag, images, root, use_trivy=rt.settings.run_trivy,
                                                          digests=digests),
        "performance": lambda: gates.check_performance(config, tag, root),
        "code_quality": lambda: gates.check_code_quality(config, tag),
        "database_migrations": lambda: check_database_migrations(config, tag, root, lambda: database_dsn(config)),
    }
    result = checks[gate]()
    create_table_artifact(result.rows or [{"result": result.summary}], key=artifact_key(f"gate-{gate}-{tag}"), description=result.summary)
    log = get_run_logger()
    (log.info if result.verdict == "passed" else log.warning)(result.summary)
    return GateResult(gate=gate, required=result.required, verdict=result.verdict, measured=str(result.measured),
                      threshold=str(result.threshold), on_failure=result.on_failure, summary=result.summary,
                      blocks=bool(gates.blocking([result])))


def run_quality_gates(tag: str, plan: ReleasePlan) -> list[GateResult]:
    """Every gate at once; each required gate that failed (or could not be read) is audited `gate_failed`."""
    images = {name: image.by_tag for name, image in plan.images.items()}
    digests = {name: image.digest for name, image in plan.images.items()}
    futures = [check_gate.submit(gate, tag, images, digests) for gate in GATES]
    results = [future.result() for future in futures]
    if metrics := runtime().metrics:
        metrics.gates(tag, {result.gate: result.verdict == "passed" for result in results})
    for result in (r for r in results if r.blocks):
        details = result.model_dump(include={"gate", "measured", "threshold", "on_failure"})
        audit(event="gate_failed", actor="quality-gates", release=tag, details=details)
    return results
