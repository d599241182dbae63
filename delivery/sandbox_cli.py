"""`tripgen-release sandbox ...`: run the local sandbox cluster and steer it."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import httpx

from delivery.policy.loader import PolicyError, load_policy
from delivery.policy.models import Policy
from delivery.units import parse_duration

DEFAULT_POLICY = Path("policies/demo.yaml")


@click.group()
def sandbox() -> None:
    """The local sandbox cluster: Kubernetes API, gateway with simulated versions, Prometheus, registry."""


@sandbox.command("serve")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Where kubeconfig and endpoints.json are written.")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Release policy whose services and namespaces are seeded (default: policies/demo.yaml when present).")
@click.option("--scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Scenario YAML (default: the shipped one).")
@click.option("--port", "ports", multiple=True, metavar="NAME=PORT",
              help="Fix a port: kubernetes, gateway, prometheus, registry or control (default: free ports).")
@click.option("--real-prometheus", is_flag=True, help="Run the machine's prometheus scraping the sandbox instead of the built-in API (implies --monitoring).")
@click.option("--monitoring", is_flag=True, help="Run a Pushgateway for the release metrics and the machine's prometheus scraping it and the telemetry.")
@click.option("--seed", type=int, help="Seed for the simulated traffic (reproducible runs).")
def serve(state_dir: Path, policy_file: Path | None, scenario: Path | None, ports: tuple[str, ...], real_prometheus: bool, monitoring: bool, seed: int | None) -> None:
    """Serve the sandbox until Ctrl-C or SIGTERM."""
    from delivery.sandbox.scenario import load_scenario
    from delivery.sandbox.server import SERVERS, Ports, Sandbox, run_sandbox

    policy = _policy(policy_file)
    chosen = Ports()
    for item in ports:
        name, _, value = item.partition("=")
        if name not in SERVERS or not value.isdigit():
            raise click.BadParameter(f"'{item}': write NAME=PORT with NAME one of {', '.join(SERVERS)}", param_hint="--port")
        setattr(chosen, name, int(value))
    try:
        loaded = load_scenario(scenario)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    click.echo(f"sandbox: serving from {state_dir} (kubeconfig, endpoints.json); Ctrl-C stops it", err=True)
    run_sandbox(Sandbox(policy, loaded, state_dir, chosen, real_prometheus, seed, monitoring=monitoring))


@sandbox.command("fault")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--api-errors", type=click.FloatRange(0, 100), help="Percent of API requests answered 500.")
@click.option("--api-throttle", type=click.FloatRange(0, 100), help="Percent of API requests answered 429 with Retry-After.")
@click.option("--api-latency", help="Delay added to every API request, e.g. 200ms.")
@click.option("--prometheus", type=click.Choice(["up", "down"]), help="Take the sandbox's Prometheus API down or back up.")
@click.option("--version", "tag", help="Image tag whose behavior changes (with --error-rate/--latency-p95/--db).")
@click.option("--error-rate", type=click.FloatRange(0, 100), help="Percent of the version's requests answered 5xx.")
@click.option("--latency-p95", help="The version's p95 latency, e.g. 1500ms.")
@click.option("--db", type=click.Choice(["up", "down"]), help="The version's database health.")
@click.option("--clear", is_flag=True, help="Remove every fault.")
def fault(state_dir: Path, api_errors, api_throttle, api_latency, prometheus, tag, error_rate, latency_p95, db, clear) -> None:
    """Inject faults into a running sandbox; prints the faults now in force."""
    control = _control_url(state_dir)
    version_fields = {"error_rate_percent": error_rate, "db_healthy": None if db is None else db == "up"}
    if latency_p95:
        version_fields["latency_p95_ms"] = _millis(latency_p95, "--latency-p95")
    version_fields = {k: v for k, v in version_fields.items() if v is not None}
    if version_fields and not tag:
        raise click.UsageError("--error-rate, --latency-p95 and --db need --version TAG")
    body = {
        "api_error_percent": api_errors,
        "api_throttle_percent": api_throttle,
        "api_latency_ms": _millis(api_latency, "--api-latency") if api_latency else None,
        "prometheus_down": None if prometheus is None else prometheus == "down",
        "versions": {tag: version_fields} if version_fields else {},
    }
    body = {k: v for k, v in body.items() if v not in (None, {})}
    if not body and not clear:
        raise click.UsageError("name a fault to set (see --help) or --clear")
    response = httpx.delete(f"{control}/faults") if clear else httpx.patch(f"{control}/faults", json=body)
    _report(response)


@sandbox.command("push")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--tag", required=True, help="The tag to make the sandbox registry know, e.g. v1.5.0-faulty.")
@click.option("--service", "services", multiple=True, help="Repository (default: every service of the policy).")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False, path_type=Path))
def push(state_dir: Path, tag: str, services: tuple[str, ...], policy_file: Path | None) -> None:
    """Make the sandbox registry serve TAG (as a CI job's docker push would)."""
    control = _control_url(state_dir)
    names = services or tuple(s.repository for s in _policy(policy_file).services)
    for name in names:
        _report(httpx.post(f"{control}/images", json={"repository": name, "tag": tag}))


def _policy(path: Path | None) -> Policy:
    chosen = path or (DEFAULT_POLICY if DEFAULT_POLICY.exists() else None)
    if chosen is None:
        return Policy()
    try:
        return load_policy(chosen)
    except PolicyError as err:
        raise click.UsageError(f"the policy has problems:\n{err.report()}") from None


def _control_url(state_dir: Path) -> str:
    from delivery.sandbox.endpoints import Endpoints

    try:
        return Endpoints.read(state_dir).control
    except FileNotFoundError as err:
        raise click.UsageError(str(err)) from None


def _millis(text: str, option: str) -> float:
    try:
        return parse_duration(text).total_seconds() * 1000
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint=option) from None


def _report(response: httpx.Response) -> None:
    if response.status_code >= 400:
        click.echo(f"sandbox refused: HTTP {response.status_code}: {response.text}", err=True)
        sys.exit(1)
    click.echo(response.text)


if __name__ == "__main__":  # `python -m delivery.sandbox_cli serve`: the sandbox without loading the whole CLI
    sandbox()
