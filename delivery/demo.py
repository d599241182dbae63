"""`tripgen-release demo`: a local Prefect server, the sandbox, the served flows, and two releases driven
through Prefect's REST API as release managers and approvers would."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import click
import httpx

import psycopg

from delivery.approval_codes import code_id
from delivery.audit import AuditLog
from delivery.code_mailbox import CodeMailbox
from delivery.demo_gitops import gitops_policy, install_argocd_application, manifests_repository, print_gitops
from delivery.demo_regions import DR, region_settings, regions_policy
from delivery.kpi_cli import kpi_text
from delivery.kube import Deployments, Routing, connect
from delivery.localdb import LocalPostgres, free_port
from delivery.policy.loader import load_policy
from delivery.prefect_rest import PrefectRest
from delivery.migrations.runner import LEDGER
from delivery.release.plan import resolve_digest
from delivery.release.timeline import runbook_steps
from delivery.release.traffic import production_traffic
from delivery.sandbox.endpoints import Endpoints
from delivery.settings import Settings

PREFECT_PORT = 4200
START_TIMEOUT = 120
RELEASE_TIMEOUT = 600


@dataclass
class Processes:
    """The child processes the demo started, stopped in reverse order unless kept, then its servers (`stops`)."""

    started: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    stops: list[Callable[[], None]] = field(default_factory=list)

    def start(self, name: str, command: list[str], env: dict[str, str], log_dir: Path) -> subprocess.Popen:
        log_dir.mkdir(parents=True, exist_ok=True)
        log = (log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append((name, process))
        return process

    def stop(self) -> None:
        for _, process in reversed(self.started):
            if process.poll() is None:
                process.terminate()
        for _, process in reversed(self.started):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for stop in reversed(self.stops):
            stop()


def wait_until(check, what: str, timeout: float, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if process is not None and process.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise click.ClickException(f"{what} exited with {process.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise click.ClickException(f"{what} did not start within {timeout}s (see {log})")
        time.sleep(0.3)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def prefect_server(procs: Processes, state: Path, env: dict[str, str]) -> str:
    """PREFECT_API_URL if set, a healthy server on 127.0.0.1:4200, or a new one (SQLite in the state dir)."""
    url = os.environ.get("PREFECT_API_URL") or f"http://127.0.0.1:{PREFECT_PORT}/api"
    if PrefectRest(url).healthy():
        click.echo(f"using the Prefect server at {url}")
        return url
    port = PREFECT_PORT if port_is_free(PREFECT_PORT) else free_port()
    url = f"http://127.0.0.1:{port}/api"
    server_env = {**env, "PREFECT_HOME": str(state / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    click.echo(f"starting a Prefect server on 127.0.0.1:{port} (SQLite in {state / 'prefect'})")
    process = procs.start("prefect-server", [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)], server_env, state / "logs")
    wait_until(PrefectRest(url).healthy, "the Prefect server", START_TIMEOUT, process, state / "logs" / "prefect-server.log")
    return url


def database_for_demo(procs: Processes, state: Path) -> tuple[str, str]:
    """TRIPGEN_DATABASE_URL, else database `tripgen` on a PostgreSQL started in state/postgres; returns (DSN, where, for
    printing: never the DSN, which may hold a password)."""
    if dsn := os.environ.get("TRIPGEN_DATABASE_URL"):
        return dsn, "TRIPGEN_DATABASE_URL (set by you)"
    server = LocalPostgres(state / "postgres")
    server.start()
    procs.stops.append(server.stop)
    dsn = server.create_database("tripgen", fresh=True)  # the sandbox seeds v1.0.0's schema, as it seeds the cluster
    return dsn, f"project-started in {server.state_dir} (database tripgen on 127.0.0.1:{server.port})"


def start_sandbox(procs: Processes, state: Path, policy: Path, env: dict[str, str], name: str = "cluster") -> Endpoints:
    """A sandbox cluster serving from state/`name` (its log: logs/sandbox-`name`.log, or logs/sandbox.log)."""
    cluster = state / name
    Endpoints.clear(cluster)
    click.echo(f"starting the sandbox cluster ({name})")
    log = "sandbox" if name == "cluster" else f"sandbox-{name}"
    command = [sys.executable, "-m", "delivery.sandbox_cli", "serve", "--state-dir", str(cluster), "--policy", str(policy)]
    process = procs.start(log, command, env, state / "logs")
    wait_until(lambda: (cluster / "endpoints.json").exists(), f"the sandbox ({name})", START_TIMEOUT, process,
               state / "logs" / f"{log}.log")
    return Endpoints.read(cluster)


def release_env(env: dict[str, str], api_url: str, endpoints: Endpoints, state: Path, policy: Path) -> dict[str, str]:
    """The worker's environment: where the flows find the sandbox (no secrets: the sandbox has none)."""
    return {
        **env,
        "PREFECT_API_URL": api_url,
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(Settings().heartbeat_seconds),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "TRIPGEN_POLICY": str(policy),
        "TRIPGEN_KUBECONFIG": str(state / "cluster" / "kubeconfig"),
        "TRIPGEN_REGISTRY_URL": endpoints.registry,
        "TRIPGEN_PROMETHEUS_URL": endpoints.prometheus,
        "TRIPGEN_GATEWAY_URL": endpoints.gateway,
        "TRIPGEN_REPORTS": str(Path.cwd()),
        "TRIPGEN_AUDIT_LOG": str(state / "audit" / "audit.jsonl"),
        "TRIPGEN_RUN_TRIVY": "false",
        "TRIPGEN_PREFECT_UI_URL": api_url.removesuffix("/api"),
    }


class WeightPrinter:
    """Prints each change of the services' canary weights, as `kubectl get virtualservice` would show them."""

    def __init__(self, kubeconfig: Path, namespace: str, services: list[str]) -> None:
        self.routing = Routing(connect(str(kubeconfig)))
        self.namespace, self.services = namespace, services
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WeightPrinter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        last: dict[str, dict] = {}
        while not self._stop.wait(0.2):
            for service in self.services:
                weights = self.routing.route_weights(self.namespace, service)
                if last.get(service, weights) != weights:
                    click.echo(f"  {service}: VirtualService weights stable {weights['stable']}% / canary {weights['canary']}%")
                last[service] = weights


def drive_release(api: PrefectRest, deployment: dict, tag: str, strategy: str, initiator: str, approvers: dict[str, str],
                  ui: str, mailbox: CodeMailbox) -> dict:
    """Start `release` for `tag`, answer each approval pause as the next approver (name -> address) with the code the
    release mailed them, return the final run."""
    run = api.create_run(deployment["id"], {"tag": tag, "strategy": strategy, "initiator": initiator, "reason": "demo"})
    click.echo(f"\nrelease {tag}: flow run {ui}/runs/flow-run/{run['id']}")
    answered: str | None = None
    waiting = iter(approvers.items())
    while True:
        run, pause = api.wait_for(run["id"], RELEASE_TIMEOUT, after_key=answered)
        if pause is None:
            return run
        approver, address = next(waiting)
        code = mailbox.code(address, run["id"])
        api.resume(run["id"], {"approver": approver, "code": code, "approve": True, "comment": "approved in the demo"})
        click.echo(f"  paused for approval ({pause.key}); {approver} read their personal code (id {code_id(code)}) in the "
                   f"mail to {address} and approved with it through POST /api/flow_runs/{{id}}/resume")
        answered = pause.key


def print_outcome(api: PrefectRest, run: dict, audit_log: Path) -> None:
    """The run's end state, and its production steps in the order they ran."""
    state = run["state"]
    message = state.get("message") or ("released" if state["type"] == "COMPLETED" else "")
    migrated = {r["details"].get("phase") for r in AuditLog(audit_log).records()
                if r["event"] == "migration_applied" and r["details"].get("flow_run_id") == run["id"]}
    click.echo(f"  runbook: {' → '.join(runbook_steps(api.task_runs(run['id']), migrated))}")
    click.echo(f"  -> {state['type'].lower()}: {message}")


def print_database(dsn: str, local: bool) -> None:
    """What the releases left in the database: the ledger, and trips.ai_confidence_score (R-DB-1's example)."""
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        ledger = conn.execute(f"SELECT version FROM {LEDGER} ORDER BY applied_at").fetchall() if conn.execute(
            "SELECT to_regclass(%s)", (LEDGER,)).fetchone()[0] else []
        column = conn.execute("SELECT is_nullable FROM information_schema.columns WHERE table_name = 'trips' "
                              "AND column_name = 'ai_confidence_score'").fetchone()
        filled = conn.execute("SELECT count(ai_confidence_score), count(*) FROM trips").fetchone() if column else None
    click.echo(f"\ndatabase: {len(ledger)} migration(s) applied ({', '.join(v for (v,) in ledger) or 'none'})")
    if column:
        click.echo(f"  trips.ai_confidence_score: {'NOT NULL' if column[0] == 'NO' else 'nullable'}, {filled[0]} of {filled[1]} rows set")
    if local:
        click.echo(f"  psql '{dsn}' -c '\\d trips'")


def print_cluster(state: Path, policy_path: Path, endpoints: Endpoints, tags: tuple[str, ...], name: str = "cluster") -> None:
    """Which color and image each service's traffic reaches in state/`name`'s cluster, with the tag of its digest."""
    policy = load_policy(policy_path)
    with httpx.Client() as http:
        tag_of = {
            resolve_digest(http, endpoints.registry, svc.repository, tag): tag for svc in policy.services for tag in ("v1.0.0", *tags)
        }
    conn = connect(str(state / name / "kubeconfig"))
    click.echo(f"\nproduction now (read from the cluster{'' if name == 'cluster' else ' of region ' + name}):")
    for row in production_traffic(policy, Deployments(conn), Routing(conn)):
        click.echo(f"  {row.line(tag_of.get((row.image or '').rpartition('@')[2], '?'))}")


def run_demo(policy: Path, state: Path, keep: bool, tags: tuple[str, str], strategy: str, mode: str = "direct",
             regions: bool = False) -> None:
    """The whole demo; leaves everything running with `keep`. `mode` gitops releases through commits ArgoCD syncs;
    `regions` adds Korea South's cluster, which each release reaches after the primary."""
    state = state.resolve()
    state.mkdir(parents=True, exist_ok=True)
    procs = Processes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIPGEN_")}
    started, began = time.monotonic(), datetime.now(timezone.utc)
    repository = manifests_repository(state) if mode == "gitops" else None
    if repository:
        policy = gitops_policy(policy, repository, state)
    if regions:
        policy = regions_policy(policy, state)
    try:
        database, where = database_for_demo(procs, state)
        click.echo(f"PostgreSQL: {where}")
        api_url = prefect_server(procs, state, env)
        endpoints = start_sandbox(procs, state, policy, {**env, "TRIPGEN_SANDBOX_DATABASE_URL": database})
        dr = start_sandbox(procs, state, policy, {**env, "TRIPGEN_SANDBOX_DATABASE_URL": database}, DR) if regions else None
        if repository:
            install_argocd_application(endpoints, state / "cluster" / "kubeconfig", repository)
        mailbox = CodeMailbox().__enter__()  # the approvers' mail: the release sends their codes here
        procs.stops.append(mailbox.__exit__)
        click.echo(f"SMTP: approvers' codes go to a local mail server on {mailbox.settings()['TRIPGEN_SMTP_HOST']}:"
                   f"{mailbox.settings()['TRIPGEN_SMTP_PORT']}")
        worker_env = {**release_env(env, api_url, endpoints, state, policy), "TRIPGEN_GITOPS_WORKDIR": str(state / "gitops"),
                      "TRIPGEN_DATABASE_URL": database, **mailbox.settings(),
                      "TRIPGEN_APPROVAL_CODE_KEY": secrets.token_urlsafe(32),  # this demo's own signing key
                      **(region_settings(state / DR, dr) if dr else {})}
        click.echo("serving the release flow as deployment release/sandbox")
        procs.start("flows", [sys.executable, "-m", "flows.serve", "sandbox"], worker_env, state / "logs")
        api, ui = PrefectRest(api_url), api_url.removesuffix("/api")
        wait_until(lambda: _has_deployment(api), "the flow server", START_TIMEOUT, procs.started[-1][1], state / "logs" / "flows.log")
        deployment = api.deployment("release/sandbox")
        for line in recovery_automations(api_url):
            click.echo(line)
        approvers = _two_approvers(policy)
        loaded = load_policy(policy)
        watching = WeightPrinter(state / "cluster" / "kubeconfig", loaded.environments["production"].namespace, [s.name for s in loaded.services])
        with watching if strategy == "canary" else contextlib.nullcontext():
            for tag in tags:
                run = drive_release(api, deployment, tag, strategy, "demo-release-manager", approvers, ui, mailbox)
                print_outcome(api, run, state / "audit" / "audit.jsonl")
        print_cluster(state, policy, endpoints, tags)
        if dr:
            print_cluster(state, policy, dr, tags, DR)
        print_database(database, local="TRIPGEN_DATABASE_URL" not in os.environ)
        if repository:
            print_gitops(state, state / "cluster" / "kubeconfig", repository)
        click.echo("\n`tripgen-release kpi` over this demo's releases (its per-day and per-week rates are over the demo's minutes):")
        click.echo(kpi_text(state / "audit" / "audit.jsonl", loaded.kpi, began, datetime.now(timezone.utc), {}))
        click.echo(f"run history: {ui}/runs   (demo took {time.monotonic() - started:.0f}s)")
        if keep:
            click.echo(f"kept running. kubectl --kubeconfig {state / 'cluster' / 'kubeconfig'} get deploy,svc -n production")
    finally:
        if not keep:
            procs.stop()


def recovery_automations(api_url: str) -> list[str]:
    """The same crash-recovery automations `deployments register` creates, for the served sandbox deployments."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.register import ensure_automations

    with temporary_settings({PREFECT_API_URL: api_url}):
        return ensure_automations(PrefectRest(api_url), "release/sandbox", "recover/sandbox", Settings().zombie_after_seconds)


def _has_deployment(api: PrefectRest) -> bool:
    try:
        api.deployment("release/sandbox")
        return True
    except LookupError:
        return False


def _two_approvers(policy_path: Path) -> dict[str, str]:
    """Two members of the production approver groups, one from each group where possible, with their e-mail."""
    policy = load_policy(policy_path)
    rule, groups = policy.approvals.production, policy.approvals.groups
    chosen: list[str] = []
    for group in rule.groups:
        chosen += [m for m in groups.get(group, []) if m not in chosen][:1]
    return {name: policy.approvals.approver_channels[name].email for name in chosen}
