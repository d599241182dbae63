"""Cross-field checks of a parsed policy; each problem names its path in the file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
import jinja2.meta
from croniter import croniter

from delivery.policy.models import ApprovalRule, Policy

TEMPLATE_VARIABLES = frozenset({"namespace", "service", "target", "version", "interval"})

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy file: where (`loc`) and what to do about it."""

    loc: Loc
    message: str

    @property
    def path(self) -> str:
        out = ""
        for part in self.loc:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out or "(top level)"


def find_problems(policy: Policy) -> list[Problem]:
    """Every cross-field problem of `policy` (an empty list means it is consistent)."""
    return [
        *_service_problems(policy),
        *_group_problems(policy),
        *_environment_problems(policy),
        *_approval_problems(policy),
        *_canary_problems(policy),
        *_template_problems(policy),
        *_watch_problems(policy),
        *_window_problems(policy),
    ]


def _service_problems(policy: Policy) -> Iterator[Problem]:
    seen: set[str] = set()
    for i, svc in enumerate(policy.services):
        if svc.name in seen:
            yield Problem(("services", i, "name"), f"service '{svc.name}' is listed twice")
        seen.add(svc.name)
    if policy.validation.db_health_service not in seen:
        yield Problem(("validation", "db_health_service"), _unknown_service(policy.validation.db_health_service, seen))


def _group_problems(policy: Policy) -> Iterator[Problem]:
    known = {svc.name for svc in policy.services}
    placed: dict[str, str] = {}
    for g, group in enumerate(policy.deployment_order.groups):
        for s, name in enumerate(group.services):
            loc = ("deployment_order", "groups", g, "services", s)
            if name not in known:
                yield Problem(loc, _unknown_service(name, known))
            elif name in placed:
                yield Problem(loc, f"'{name}' is already in group '{placed[name]}': a service belongs to one group")
            else:
                placed[name] = group.name
    for i, svc in enumerate(policy.services):
        if svc.name not in placed:
            yield Problem(("services", i, "name"), f"'{svc.name}' is in no deployment group: add it to deployment_order.groups")


def _environment_problems(policy: Policy) -> Iterator[Problem]:
    for name in ("staging", "production"):
        if name not in policy.environments:
            yield Problem(("environments",), f"'{name}' is missing: a release needs staging and production")
    production = policy.environments.get("production")
    if production and production.strategy == "rolling":
        yield Problem(("environments", "production", "strategy"), "production needs 'blue-green' or 'canary'")


def _approval_problems(policy: Policy) -> Iterator[Problem]:
    approvals = policy.approvals
    rules: dict[str, ApprovalRule] = {
        "staging": approvals.staging,
        "production": approvals.production,
        "emergency_override": approvals.emergency_override,
        "hotfix": approvals.hotfix,
        "rollback": approvals.rollback,
    }
    for rule_name, rule in rules.items():
        members: set[str] = set()
        for i, group in enumerate(rule.groups):
            if group not in approvals.groups:
                known = ", ".join(approvals.groups) or "none"
                yield Problem(("approvals", rule_name, "groups", i), f"unknown group '{group}' (known: {known})")
            else:
                members.update(approvals.groups[group])
        if len(members) < rule.approvers:
            yield Problem(
                ("approvals", rule_name, "approvers"),
                f"needs {rule.approvers} approvers but {', '.join(rule.groups)} "
                f"{'has' if len(rule.groups) == 1 else 'have'} only {len(members)} member(s): add members or lower the count",
            )
    members = {name for group in approvals.groups.values() for name in group}
    for name in approvals.approver_channels:
        if name not in members:
            yield Problem(("approvals", "approver_channels", name),
                          f"'{name}' is in no approver group ({', '.join(approvals.groups) or 'none'}): "
                          "channels are for group members, who receive approval codes")


def _canary_problems(policy: Policy) -> Iterator[Problem]:
    canary = policy.canary
    weights = [stage.weight for stage in canary.stages]
    for i in range(1, len(weights)):
        if weights[i] <= weights[i - 1]:
            yield Problem(("canary", "stages", i, "weight"), f"must be greater than the previous stage's {weights[i - 1]:g}")
    if weights and weights[-1] != 100:
        yield Problem(("canary", "stages", len(weights) - 1, "weight"), "the last stage must send 100% to the new version")
    analysis = canary.analysis
    if analysis.step_weight > analysis.max_weight:
        yield Problem(("canary", "analysis", "step_weight"), f"is larger than max_weight {analysis.max_weight:g}")
    for i, metric in enumerate(analysis.metrics):
        if metric.template not in policy.metric_templates:
            yield Problem(("canary", "analysis", "metrics", i, "template"), _unknown_template(metric.template, policy))
        if metric.min is None and metric.max is None:
            yield Problem(("canary", "analysis", "metrics", i), "set min, max or both: a check needs a threshold")


def _template_problems(policy: Policy) -> Iterator[Problem]:
    for field in ("request_count_metric", "error_count_metric", "response_time_metric"):
        name = getattr(policy.watch, field)
        if name not in policy.metric_templates:
            yield Problem(("watch", field), _unknown_template(name, policy))
    env = jinja2.Environment()
    for name, template in policy.metric_templates.items():
        loc = ("metric_templates", name, "query")
        try:
            used = jinja2.meta.find_undeclared_variables(env.parse(template.query))
        except jinja2.TemplateSyntaxError as err:
            yield Problem(loc, f"template syntax error: {err.message}")
            continue
        unknown = sorted(used - TEMPLATE_VARIABLES)
        if unknown:
            yield Problem(loc, f"unknown variable(s) {', '.join(unknown)}; use {', '.join(sorted(TEMPLATE_VARIABLES))}")


def _watch_problems(policy: Policy) -> Iterator[Problem]:
    watch = policy.watch
    if watch.emergency_rollback_error_rate_percent < watch.alert_error_rate_percent:
        yield Problem(
            ("watch", "emergency_rollback_error_rate_percent"),
            f"is below alert_error_rate_percent {watch.alert_error_rate_percent:g}: the emergency rollback would come before the alert",
        )


def _window_problems(policy: Policy) -> Iterator[Problem]:
    window = policy.sync_window
    if not croniter.is_valid(window.schedule):
        yield Problem(("sync_window", "schedule"), f"'{window.schedule}' is not a cron expression (e.g. '0 2 * * 1-5')")
    try:
        ZoneInfo(window.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        yield Problem(("sync_window", "timezone"), f"unknown time zone '{window.timezone}' (e.g. 'Asia/Seoul', 'UTC')")


def _unknown_service(name: str, known: set[str]) -> str:
    return f"unknown service '{name}' (known: {', '.join(sorted(known))})"


def _unknown_template(name: str, policy: Policy) -> str:
    return f"unknown metric template '{name}' (known: {', '.join(sorted(policy.metric_templates))})"
