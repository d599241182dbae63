"""A short human summary of a policy: the numbers a release manager checks before a release.

Settings the policy holds but no release code reads yet are marked "(not enforced)".
"""

from __future__ import annotations

from delivery.policy.models import Approvals, Gate, Policy
from delivery.policy.window import describe_window
from delivery.units import format_duration as fd

NOT_ENFORCED = "(not enforced)"


def summarize(policy: Policy) -> list[tuple[str, str]]:
    """(topic, line) pairs, in the order a release runs."""
    return [
        ("cluster", _cluster(policy)),
        ("regions", _regions(policy)),
        ("services", _services(policy)),
        ("order", _order(policy)),
        ("environments", _environments(policy)),
        ("quality gates", _gates(policy)),
        ("validation", _validation(policy)),
        ("blue-green", _blue_green(policy)),
        ("canary", _canary(policy)),
        ("approvals", _approvals(policy)),
        ("sync window", describe_window(policy.sync_window)),
        ("delivery", _delivery(policy)),
        ("alerting", _alerting(policy)),
        ("kpi", _kpi(policy)),
        ("DR drill", f"`tripgen-release dr-drill` holds RTO to {fd(policy.disaster_recovery.rto)}, RPO to "
                              f"{fd(policy.disaster_recovery.rpo)} and the database failover to "
                              f"{fd(policy.disaster_recovery.database_failover)}"),
        ("metrics", f"Prometheus {policy.prometheus.url}; templates {', '.join(sorted(policy.metric_templates))}"),
    ]


def render_summary(source: str, policy: Policy) -> str:
    """The summary as aligned text, headed by the file it came from."""
    rows = summarize(policy)
    width = max(len(topic) for topic, _ in rows)
    return "\n".join([f"{source}: valid", *(f"  {topic:<{width}}  {line}" for topic, line in rows)])


def _services(p: Policy) -> str:
    names = ", ".join(s.name for s in p.services)
    first = p.services[0]
    shape = (
        f"{first.replicas} replicas, cpu {first.resources.requests.cpu}/{first.resources.limits.cpu}, "
        f"memory {first.resources.requests.memory}/{first.resources.limits.memory}"
    )
    return f"{names} from {p.registry} ({shape})"


def _delivery(p: Policy) -> str:
    d = p.delivery
    if d.mode == "direct":
        return "direct: production changes go to the cluster API"
    return (f"gitops: a commit per production change to {d.repository} ({d.branch}, {d.path}), each awaited on "
            f"ArgoCD application {d.application_namespace}/{d.application} (at most {fd(d.sync_timeout)} per commit)")


def _cluster(p: Policy) -> str:
    azure = p.cluster.azure
    if azure is None:
        return "TRIPGEN_KUBECONFIG, else the in-cluster service account"
    return f"{azure.label}: kubeconfig from Azure, token from azure-identity (TRIPGEN_KUBECONFIG overrides)"


def _regions(p: Policy) -> str:
    if not p.regions:
        return "one region (the cluster above)"
    primary = next(r.name for r in p.regions if r.role == "primary")
    dr = ", ".join(f"{r.name} ({r.cluster.azure.label if r.cluster.azure else 'TRIPGEN_REGION_ENDPOINTS'})" for r in p.dr_regions())
    return (f"{primary} (primary, the cluster above), then {dr or 'no DR region'} once the primary's watch passed; "
            "a failure in any region restores every region")


def _unenforced(text: str) -> str:
    """`text` marked as a setting the policy holds but no release code reads yet."""
    return f"{text} {NOT_ENFORCED}"


def _order(p: Policy) -> str:
    order = p.deployment_order
    steps = ["database migrations (expand)"]
    steps += [", ".join(g.services) for g in order.groups]
    limit = order.limit_per_deployment
    return " -> ".join(steps) + f"; max {order.max_concurrent} concurrent, " + _unenforced(f"each {limit.cpu} CPU / {limit.memory}")


# What release code reads of each environment (flows/staging.py, tasks/watching.py, the namespaces): the release
# flow's own `strategy` parameter picks the strategy, production always asks for approval and always rolls back,
# and no flow uses an environment called canary. Everything else is printed as not enforced.
_ENFORCED_ENVIRONMENT_FIELDS = {"staging": {"namespace", "watch", "auto_rollback"}, "production": {"namespace", "watch"}}


def _environments(p: Policy) -> str:
    entries = []
    for name, e in p.environments.items():
        read = _ENFORCED_ENVIRONMENT_FIELDS.get(name)  # None: the whole environment is marked once
        mark = lambda field, text: text if read is None or field in read else _unenforced(text)  # noqa: E731
        fields = [
            mark("strategy", e.strategy),
            mark("approval", f"{e.approval} approval"),
            mark("watch", f"watch {fd(e.watch)}"),
            mark("auto_rollback", f"auto rollback {'on' if e.auto_rollback else 'off'}"),
        ]
        head = f"{name} ({mark('namespace', e.namespace)})"
        entries.append(f"{head if read is not None else _unenforced(head)}: {', '.join(fields)}")
    return "; ".join(entries)


def _gate(label: str, gate: Gate) -> str:
    kind = "required" if gate.required else "recommended"
    return f"{label} ({kind}, on failure {gate.on_failure})"


def _gates(p: Policy) -> str:
    g = p.quality_gates
    high = "" if g.security_scan.max_high is None else f", <= {g.security_scan.max_high} high"
    return "; ".join(
        [
            _gate(f"coverage >= {g.unit_tests.min_coverage_percent:g}%", g.unit_tests),
            _gate(f"integration tests {g.integration_tests.min_pass_percent:g}% pass", g.integration_tests),
            _gate(f"{g.security_scan.max_critical} critical vulnerabilities{high}", g.security_scan),
            _gate(f"performance within ±{g.performance.max_deviation_percent:g}% of baseline", g.performance),
            _gate(f"SonarQube grade {g.code_quality.min_grade}", g.code_quality),
            _gate(f"migrations ({g.database_migrations.report}) lint clean under squawk and rehearse on a schema copy, "
                  f"contract {g.database_migrations.contract.replace('_', ' ')}", g.database_migrations),
        ]
    )


def _validation(p: Policy) -> str:
    v = p.validation
    return (
        f"rollout timeout {fd(v.rollout_timeout)}; health {v.health_attempts} tries {fd(v.health_retry_interval)} apart; "
        f"GET {v.response_time_path} <= {fd(v.max_response_time)}; DB health from {v.db_health_service}"
    )


def _blue_green(p: Policy) -> str:
    b, w = p.blue_green, p.watch
    production = p.environments.get("production")
    watch = f"watch {fd(production.watch)} " if production else "watch "
    return (
        f"roll back when error rate > {b.max_error_rate_percent:g}% or response time > {fd(b.max_response_time)}; "
        f"{watch}every {fd(w.interval)}; alert > {w.alert_error_rate_percent:g}%, "
        f"emergency rollback > {w.emergency_rollback_error_rate_percent:g}%; green ready within {fd(b.ready_timeout)}; "
        f"old color removed {fd(b.old_color_grace)} after the watch; notify {', '.join(b.notify)}"
    )


def _canary(p: Policy) -> str:
    c, a = p.canary, p.canary.analysis
    stages = " -> ".join(f"{s.weight:g}% ({fd(s.observe)})" for s in c.stages)
    limits = {f"{s.max_error_rate_percent:g}%" for s in c.stages}
    checks = ", ".join(
        f"{m.name}" + (f" >= {m.min:g}" if m.min is not None else "") + (f" <= {m.max:g}" if m.max is not None else "")
        for m in a.metrics
    )
    return (
        f"stages {stages} while error rate < {'/'.join(sorted(limits))}; "
        f"analysis: step {a.step_weight:g}% to {a.max_weight:g}% every {fd(a.interval)}, "
        f"rollback after {a.threshold} failed checks ({checks}), progress deadline {fd(a.progress_deadline)}; "
        f"progression '{c.progression}', judge '{c.judge}'; abort > {c.abort_error_rate_percent:g}%"
    )


def _approvals(p: Policy) -> str:
    a = p.approvals
    rule = lambda r: f"{r.approvers} of {', '.join(r.groups)}"  # noqa: E731
    auto = [k for k, on in (("security patch", a.hotfix.auto_approve_security_patch), ("critical", a.hotfix.auto_approve_critical_severity)) if on]
    return (
        f"production: {rule(a.production)}; staging: {_unenforced(rule(a.staging))}; hotfix: {rule(a.hotfix)}"
        + (f" (automatic when {' or '.join(auto)})" if auto else "")
        + f"; emergency override: {rule(a.emergency_override)}; rollback: {rule(a.rollback)}; "
        f"initiator may {'' if a.initiator_may_approve else 'not '}approve; "
        f"the tag's commit author may {'' if a.commit_author_may_approve else 'not '}approve; "
        f"{_code_channels(a)}; timeout {fd(a.timeout)}"
    )


def _code_channels(a: Approvals) -> str:
    """How many approvers receive their approval codes by e-mail and how many by Slack."""
    by_email = sum(1 for channel in a.approver_channels.values() if channel.email)
    return f"approval codes to {by_email} approver(s) by e-mail and {len(a.approver_channels) - by_email} by Slack DM"


def _alerting(p: Policy) -> str:
    return "; ".join(
        f"{sev}: {'+'.join(r.channels)}, escalate to {r.escalate_to} after {fd(r.escalate_after)}"
        for sev, r in p.alerting.items()
    )


def _kpi(p: Policy) -> str:
    k = p.kpi
    return (f"`tripgen-release kpi` reports success rate against {k.min_deployment_success_rate_percent:g}%, "
            f"rollbacks against {k.max_rollbacks_per_day}/day, duration against {fd(k.max_deployment_duration)}, "
            f"blue-green switch against {fd(k.max_blue_green_switch_time)}, "
            f"canary error rate against {k.max_canary_error_rate_percent:g}%; "
            "Prometheus alerts on the same thresholds (rules: python -m delivery.metrics.kpi_rules FILE)")
