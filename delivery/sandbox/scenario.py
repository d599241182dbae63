"""A sandbox scenario: the tags the registry knows, how versions behave, traffic, and the seeded topology."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from delivery.kube.manifests import colored_deployment
from delivery.policy.models import Percent, Policy, PositiveDuration, Strict
from delivery.sandbox.behavior import BehaviorRule, VersionBehavior
from delivery.units import Duration, parse_duration

DEFAULT_SCENARIO = "default-scenario.yaml"


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

    def rule(self) -> BehaviorRule:
        behavior = VersionBehavior(
            becomes_ready=self.becomes_ready,
            error_rate=self.error_rate_percent / 100,
            latency_p50_ms=self.latency_p50_ms,
            latency_p95_ms=max(self.latency_p95_ms, self.latency_p50_ms),
            db_healthy=self.db_healthy,
        )
        return BehaviorRule(self.tag, behavior, tuple(self.namespaces) if self.namespaces is not None else None,
                            tuple(self.hosts) if self.hosts is not None else None)


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
    load: Load = Load()
    hosts: Hosts = Hosts()
    behaviors: list[BehaviorSpec] = Field(min_length=1)

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
    """The seed objects: namespaces, and per service its Deployment, Service, Ingress route and Istio routing.

    Production runs `<service>-blue` behind a Service selecting `version: blue`, with a VirtualService
    (header `canary: true` -> subset canary; otherwise stable 100 / canary 0) and a DestinationRule whose
    `stable` subset adds no labels (so it follows the Service's color) and `canary` selects `version: canary`.
    Staging runs one rolling Deployment `<service>` per service, as the Helm chart installs it.
    """
    production = policy.environments["production"].namespace
    staging = policy.environments["staging"].namespace
    deadline = int(policy.blue_green.ready_timeout.total_seconds())
    objects: list[dict] = [_namespace(production), _namespace(staging)]
    for svc in policy.services:
        image = image_of(policy, svc.name, scenario.initial_tag)
        objects += [
            colored_deployment(svc, production, "blue", image, deadline),
            _service(svc.name, production, {"app": svc.name, "version": "blue"}, svc.port),
            _destination_rule(svc.name, production),
            _virtual_service(svc.name, production, policy),
            _rolling_deployment(colored_deployment(svc, staging, "blue", image, deadline), svc.name),
            _service(svc.name, staging, {"app": svc.name}, svc.port),
        ]
    objects.append(_ingress(production, [scenario.hosts.production, policy.blue_green.validation_host], policy))
    objects.append(_ingress(staging, [scenario.hosts.staging], policy))
    return objects


def _namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _service(name: str, namespace: str, selector: dict, port: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": port}]},
    }


def _rolling_deployment(manifest: dict, name: str) -> dict:
    """The staging shape: one Deployment per service, selected by `app` only, rolled in place."""
    labels = {"app": name}
    manifest["metadata"].update(name=name, labels=labels)
    manifest["spec"]["selector"] = {"matchLabels": labels}
    manifest["spec"]["template"]["metadata"]["labels"] = labels
    manifest["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    return manifest


def _destination_rule(name: str, namespace: str) -> dict:
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"host": name, "subsets": [{"name": "stable"}, {"name": "canary", "labels": {"version": "canary"}}]},
    }


def _virtual_service(name: str, namespace: str, policy: Policy) -> dict:
    header = {policy.canary.header_name: {"exact": policy.canary.header_value}}
    to = lambda subset: {"host": name, "subset": subset}  # noqa: E731
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "hosts": [name],
            "http": [
                {"name": "canary-header", "match": [{"headers": header}], "route": [{"destination": to("canary")}]},
                {"name": "primary", "route": [{"destination": to("stable"), "weight": 100}, {"destination": to("canary"), "weight": 0}]},
            ],
        },
    }


def _ingress(namespace: str, hosts: list[str], policy: Policy) -> dict:
    paths = [
        {"path": svc.public_path, "pathType": "Prefix", "backend": {"service": {"name": svc.name, "port": {"number": 80}}}}
        for svc in policy.services
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "tripgen", "namespace": namespace},
        "spec": {"rules": [{"host": host, "http": {"paths": paths}} for host in hosts]},
    }
