"""Rollback steps (R-RB): check the request, roll each service back, validate production afterwards."""

from __future__ import annotations

import time

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from delivery.kube.manifests import colored_deployment
from delivery.release.plan import PlanError, release_groups, resolve_digest, select_services
from delivery.release.retrying import CLUSTER_STEP, HTTP_STEP
from delivery.release.rollback import plan_service, production_images, ran_in_production, revision_running, validate_request
from delivery.release.runtime import runtime
from delivery.release.staging import validate
from delivery.release.state import CheckRow, RollbackDone, RollbackPlan, RollbackStep
from tasks.bluegreen import ColorNotReady
from tasks.retry import transient_only


def target_images(service: str, target_version: str) -> tuple[str, set[str]]:
    """The target's image by digest (from the registry), and the names it may run under (digest or tag)."""
    rt = runtime()
    policy = rt.policy
    repository = policy.service(service).repository
    digest = resolve_digest(rt.http, rt.settings.registry_api(policy), repository, target_version)
    by_digest = f"{policy.registry}/{repository}@{digest}"
    return by_digest, {by_digest, f"{policy.registry}/{repository}:{target_version}"}


@task(name="plan rollback", retry_condition_fn=transient_only, **HTTP_STEP)
def plan_rollback(target_version: str, reason: str, services: list[str] | None) -> RollbackPlan:
    """Validate the request and decide per service; refuses versions that never ran in production."""
    validate_request(target_version, reason)
    rt = runtime()
    policy, namespace = rt.policy, rt.blue_green.namespace
    groups = release_groups(policy, select_services(policy, services))
    records = rt.audit.records()
    steps = []
    for name in [name for group in reversed(groups) for name in group]:  # dependents first
        image, images = target_images(name, target_version)
        if not ran_in_production(target_version, records, production_images(rt.deployments, namespace, name), images):
            raise PlanError(f"{target_version} never ran in production for {name} (audit log and revision history): pick a version that did")
        step = plan_service(rt.blue_green, name, image)
        steps.append(RollbackStep(service=name, image=image, action=step.action, from_color=step.live_color, to_color=step.to_color))
    create_table_artifact([s.model_dump() for s in steps], key="rollback-plan", description=f"Rollback to {target_version}")
    return RollbackPlan(target=target_version, steps=steps)


@task(name="plan staging rollback", retry_condition_fn=transient_only, **HTTP_STEP)
def plan_staging_rollback(target_version: str, reason: str, services: list[str] | None) -> RollbackPlan:
    """Rolling services: the revision of each staging Deployment that ran the target; refuses when none did."""
    validate_request(target_version, reason)
    rt = runtime()
    policy, namespace = rt.policy, rt.policy.environments["staging"].namespace
    groups = release_groups(policy, select_services(policy, services))
    steps = []
    for name in [name for group in reversed(groups) for name in group]:
        _, images = target_images(name, target_version)
        revision, current = revision_running(rt.deployments, namespace, name, images)
        if revision is None:
            raise PlanError(f"{target_version} never ran in staging for {name} (revision history): pick a version that did")
        steps.append(RollbackStep(service=name, revision=revision, action="already live" if current else "undo",
                                  from_color="current", to_color=f"revision {revision}"))
    create_table_artifact([s.model_dump() for s in steps], key="rollback-plan", description=f"Staging rollback to {target_version}")
    return RollbackPlan(target=target_version, steps=steps)


@task(name="undo to revision", task_run_name="undo staging {service} to revision {revision}", retry_condition_fn=transient_only, **CLUSTER_STEP)
def undo_staging_to(service: str, revision: int) -> RollbackDone:
    """Put the template of `revision` back on the rolling Deployment and wait for it (R-VAL-1)."""
    rt = runtime()
    namespace = rt.policy.environments["staging"].namespace
    started = time.perf_counter()
    rt.deployments.undo(namespace, service, to_revision=revision)
    result = rt.deployments.wait_rolled_out(namespace, service, rt.policy.validation.rollout_timeout.total_seconds())
    if not result.done:
        raise ColorNotReady(f"staging {service} did not roll back to revision {revision}: {result.message}")
    return RollbackDone(service=service, action="undo", from_color="current", to_color=f"revision {revision}", seconds=time.perf_counter() - started)


@task(name="roll back service", task_run_name="roll back {service} ({action})", retry_condition_fn=transient_only, **CLUSTER_STEP)
def roll_back_service(service: str, image: str, action: str, to_color: str) -> RollbackDone:
    """Switch at once when the idle color runs the target; otherwise deploy it there, wait (120 s), then switch."""
    rt = runtime()
    policy, bg = rt.policy, rt.blue_green
    started = time.perf_counter()
    if action == "deploy and switch":
        deadline = int(policy.rollback.ready_timeout.total_seconds())
        rt.deployments.apply(colored_deployment(policy.service(service), bg.namespace, to_color, image, deadline))
        result = rt.deployments.wait_rolled_out(bg.namespace, f"{service}-{to_color}", policy.rollback.ready_timeout.total_seconds())
        if not result.done:
            raise ColorNotReady(f"{service}-{to_color} with {image} is not available: {result.message}; traffic was not switched")
    switch = bg.switch(service, to_color) if action != "already live" else None
    seconds = time.perf_counter() - started
    get_run_logger().warning("%s: %s to %s (%s) in %.2fs", service, action, to_color, image, seconds)
    return RollbackDone(service=service, action=action, from_color=switch.from_color if switch else to_color, to_color=to_color, seconds=seconds)


@task(name="validate after rollback", task_run_name="validate {environment}", retry_condition_fn=transient_only, **HTTP_STEP)
def validate_environment(environment: str, services: list[str]) -> list[CheckRow]:
    """R-VAL health and response time through the environment's host after the rollback."""
    rt = runtime()
    host = rt.settings.public_host if environment == "production" else rt.settings.staging_host
    results = validate(rt.policy, rt.prober, host, rt.policy.environments[environment].namespace, services)
    rows = [CheckRow(check=r.name, passed=r.passed, detail=r.detail) for r in results]
    create_table_artifact([r.model_dump() for r in rows], key="rollback-validation", description=f"{environment} after the rollback (R-VAL)")
    failed = [r for r in results if not r.passed]
    if failed:
        raise ColorNotReady("; ".join(f"{r.name}: {r.detail}" for r in failed))
    return rows
