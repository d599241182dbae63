"""Render the policy's metric templates (`{{ namespace }}` ...) into PromQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import jinja2

from delivery.policy.models import MetricTemplate
from delivery.units import format_duration

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


@dataclass(frozen=True)
class QueryTarget:
    """What a query is about: a service's workload in a namespace over an interval."""

    namespace: str
    service: str
    target: str  # workload name or regex, e.g. `trip-service-green`
    version: str = ".*"  # version label value or regex
    interval: timedelta = timedelta(minutes=1)

    def variables(self) -> dict[str, str]:
        return {
            "namespace": self.namespace,
            "service": self.service,
            "target": self.target,
            "version": self.version,
            "interval": promql_range(self.interval),
        }


def promql_range(interval: timedelta) -> str:
    """A PromQL range literal: `1m`, `30s`, `1m30s` (whole milliseconds at least)."""
    return format_duration(interval)


def render_query(template: MetricTemplate, target: QueryTarget) -> str:
    """The template's PromQL with the target's variables filled in."""
    try:
        return _ENV.from_string(template.query).render(**target.variables())
    except jinja2.UndefinedError as err:
        raise ValueError(f"metric template uses an unknown variable: {err.message}") from None
