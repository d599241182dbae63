"""Push the release metrics to a Prometheus Pushgateway; a failed push is logged, never a failed release."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, delete_from_gateway, push_to_gateway

from delivery.metrics.release_metrics import PushGroup, canary_group, ended_canary, gates_group, release_groups

LOG = logging.getLogger("tripgen.metrics")
TIMEOUT_SECONDS = 3.0


@dataclass
class ReleaseMetrics:
    """The flows' side of the Pushgateway (TRIPGEN_PUSHGATEWAY_URL): monitoring must never stop a release."""

    url: str
    services: Sequence[str]
    warn: Callable[[str], None] = field(default=LOG.warning)

    def after_audit(self, record: dict, records: list[dict]) -> None:
        """An audit record was appended: end its canary's group, then push every group again from `records`."""
        if ended := ended_canary(record):
            self._send(ended, delete=True)
        for group in release_groups(records, self.services):
            self._send(group)

    def canary_interval(self, service: str, errors: float, requests: float) -> None:
        if group := canary_group(service, errors, requests):
            self._send(group)

    def gates(self, release: str, passed: dict[str, bool]) -> None:
        self._send(gates_group(release, passed))

    def _send(self, group: PushGroup, delete: bool = False) -> None:
        key = dict(group.key)
        try:
            if delete:
                delete_from_gateway(self.url, job=group.job, grouping_key=key, timeout=TIMEOUT_SECONDS)
            else:
                registry = CollectorRegistry(auto_describe=False)
                registry.register(group)
                push_to_gateway(self.url, job=group.job, registry=registry, grouping_key=key, timeout=TIMEOUT_SECONDS)
        except OSError as error:  # urllib's URLError and HTTPError, refused connections, timeouts
            self.warn(f"metrics not pushed to the Pushgateway {self.url} (job {group.job}, {key}): {error}")
