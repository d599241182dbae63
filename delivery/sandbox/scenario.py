"""A sandbox scenario: the tags the registry knows, how versions behave, traffic, and the seeded topology."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field, StringConstraints, ValidationError

from delivery.gitops.kustomize import MANIFESTS, render
from delivery.policy.models import Percent, Policy, PositiveDuration, Strict
from delivery.sandbox.behavior import BehaviorRule, VersionBehavior
from delivery.sandbox.database import SchemaRule
from delivery.units import Duration, parse_duration

DEFAULT_SCENARIO = "default-scenario.yaml"
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*$")]  # an unquoted PostgreSQL name


class BehaviorSpec(Strict):
    """How pods of tags matching `tag` (a glob such as `*-faulty`) behave."""

    tag: str
    namespaces: list[str] | None = None
    hosts: list[str] | None = None  # only requests to these hosts (e.g. real users', not the validation host)
    becomes_ready: bool = True
    error_rate_percent: Percent = 0.05
    latency_p50_ms: float = Field(default=40, gt=0)
    latency_p95_ms: float = Field(default=120, gt=0)
    db_healthy: bool = True
    cpu_millicores: float = Field(default=250, gt=0)
    memory_mib: float = Field(default=384, gt=0)
    memory_growth_mib_per_second: float = Field(default=0, ge=0)  # a leak: the OOM kill comes at the memory limit
    exits_after: PositiveDuration | None = None  # the container exits with code 1 this long after each start

    def rule(self) -> BehaviorRule:
        behavior = VersionBehavior(
            becomes_ready=self.becomes_ready,
            error_rate=self.error_rate_percent / 100,
            latency_p50_ms=self.latency_p50_ms,
            latency_p95_ms=max(self.latency_p95_ms, self.latency_p50_ms),
            db_healthy=self.db_healthy,
            cpu_millicores=self.cpu_millicores,
            memory_mib=self.memory_mib,
            memory_growth_mib_per_second=self.memory_growth_mib_per_second,
            exits_after_seconds=self.exits_after.total_seconds() if self.exits_after else None,
        )
        return BehaviorRule(self.tag, behavior, tuple(self.namespaces) if self.namespaces is not None else None,
                            tuple(self.hosts) if self.hosts is not None else None)


class SchemaSpec(Strict):
    """The tables and columns pods of `services` running tags matching `tag` read and write in production's database."""

    tag: str
    services: list[str] = Field(min_length=1)
    tables: dict[Identifier, Annotated[list[Identifier], Field(min_length=1)]] = Field(min_length=1)

    def rule(self) -> SchemaRule:
        columns = frozenset((table, column) for table, names in self.tables.items() for column in names)
        return SchemaRule(self.tag, frozenset(self.services), columns)


class Load(Strict):
    requests_per_second: float = Field(default=20, ge=0)
    canary_header_percent: Percent = 0


class Hosts(Strict):
    production: str = "api.tripgen.com"
    staging: str = "staging-api.tripgen.com"


class Scenario(Strict):
    """What the sandbox starts with; `sandbox serve --scenario FILE` reads one, the default is shipped."""

    initial_tag: str = "v1.0.0"
    known_tags: list[str] = Field(min_length=1)
    ready_delay: Duration = parse_duration("500ms")
    sample_interval: PositiveDuration = parse_duration("1s")
    restart_backoff: PositiveDuration = parse_duration("1s")  # a failed container's first back-off; doubles, up to 30x
    load: Load = Load()
    hosts: Hosts = Hosts()
    behaviors: list[BehaviorSpec] = Field(min_length=1)
    database_schema: list[SchemaSpec] = Field(default=[], alias="schema")  # first match per service and tag

    def schema_rules(self) -> tuple[SchemaRule, ...]:
        return tuple(spec.rule() for spec in self.database_schema)

    def rules(self) -> tuple[BehaviorRule, ...]:
        """Behavior rules in order, with a healthy catch-all appended when the file has none."""
        rules = [spec.rule() for spec in self.behaviors]
        if not any(rule.tag_glob == "*" and rule.namespaces is None for rule in rules):
            rules.append(BehaviorRule("*", VersionBehavior()))
        return tuple(rules)


def load_scenario(path: str | Path | None = None) -> Scenario:
    """The scenario at `path`, or the shipped default; ValueError names every problem."""
    if path is None:
        text = resources.files("delivery.sandbox").joinpath(DEFAULT_SCENARIO).read_text()
        source = DEFAULT_SCENARIO
    else:
        text, source = Path(path).read_text(), str(path)
    try:
        return Scenario.model_validate(yaml.safe_load(text) or {})
    except ValidationError as err:
        lines = [f"{source}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()]
        raise ValueError("\n".join(lines)) from None


def image_of(policy: Policy, service: str, tag: str) -> str:
    return f"{policy.registry}/{policy.service(service).repository}:{tag}"


def topology(policy: Policy, scenario: Scenario) -> list[dict]:
    """The seed objects: the staging and production overlays of infra/k8s-manifests (docs/gitops.md), rendered,
    with what the scenario and the policy decide put in, as the release itself would write it.

    Each container runs `<registry>/<repository>:<initial_tag>`; each Deployment takes the fields the release's
    `colored_deployment` takes from the policy (replicas, except an idle color's 0; progress deadline; env;
    resources). Raises ValueError when the policy's namespaces or services are not the overlays'.
    """
    environments = [policy.environments[env].namespace for env in ("staging", "production")]
    objects = [obj for env in ("staging", "production") for obj in render(MANIFESTS / "environments" / env)]
    namespaces = [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"]
    apps = {o["metadata"]["labels"]["app"] for o in objects if o["kind"] == "Deployment"}
    if namespaces != environments or apps != {svc.name for svc in policy.services}:
        raise ValueError(f"the policy's namespaces {environments} and services {sorted(s.name for s in policy.services)} "
                         f"must be those of {MANIFESTS}: {namespaces}, {sorted(apps)}")
    deadline = int(policy.blue_green.ready_timeout.total_seconds())
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        svc = policy.service(deployment["metadata"]["labels"]["app"])
        spec = deployment["spec"]
        spec.update(replicas=svc.replicas if spec["replicas"] else 0, progressDeadlineSeconds=deadline)
        container = next(c for c in spec["template"]["spec"]["containers"] if c["name"] == svc.name)
        container.update(image=image_of(policy, svc.name, scenario.initial_tag),
                         env=[{"name": key, "value": value} for key, value in svc.env.items()],
                         resources=svc.resources.model_dump())
    return sorted(objects, key=lambda o: o["kind"] != "Namespace")
