"""How each simulated image version behaves: readiness, error rate, latency, DB health, CPU and memory, crashes."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace

from delivery.sandbox.images import manifest_digest


@dataclass(frozen=True)
class VersionBehavior:
    """What pods running one image tag do when they start and take traffic."""

    becomes_ready: bool = True
    error_rate: float = 0.0005  # fraction of requests answered 5xx
    latency_p50_ms: float = 40.0
    latency_p95_ms: float = 120.0
    db_healthy: bool = True
    cpu_millicores: float = 250.0  # what each container uses
    memory_mib: float = 384.0  # a container's memory when it starts
    memory_growth_mib_per_second: float = 0.0  # a leak: memory grows this much each second until the OOM kill
    exits_after_seconds: float | None = None  # the container exits with code 1 this long after it starts


@dataclass(frozen=True)
class BehaviorRule:
    """A glob on the image tag (`*-faulty`) and the behavior it gives, in some namespaces and for requests
    to some hosts, or (None) all."""

    tag_glob: str
    behavior: VersionBehavior
    namespaces: tuple[str, ...] | None = None
    hosts: tuple[str, ...] | None = None

    def applies(self, tag: str, namespace: str | None, host: str | None = None) -> bool:
        in_scope = self.namespaces is None or namespace is None or namespace in self.namespaces
        for_host = self.hosts is None or host is None or host in self.hosts
        return in_scope and for_host and fnmatch.fnmatchcase(tag, self.tag_glob)


DEFAULT_RULES: tuple[BehaviorRule, ...] = (
    BehaviorRule("*-broken", VersionBehavior(becomes_ready=False)),
    BehaviorRule("*-faulty", VersionBehavior(error_rate=0.05), ("production",), ("api.tripgen.com",)),
    BehaviorRule("*-slow", VersionBehavior(latency_p50_ms=900.0, latency_p95_ms=1500.0)),
    BehaviorRule("*-leaky", VersionBehavior(memory_growth_mib_per_second=25.0)),
    BehaviorRule("*-crashloop", VersionBehavior(becomes_ready=False, exits_after_seconds=2.0)),
    BehaviorRule("*", VersionBehavior()),
)


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """Split `repo[:tag][@digest]` into (repository, tag, digest)."""
    rest, _, digest = image.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        return rest[:colon], rest[colon + 1 :], digest or None
    return rest, None, digest or None


class BehaviorBook:
    """Resolves an image (by tag or by digest) to its behavior; faults override rules."""

    def __init__(self, rules: tuple[BehaviorRule, ...] = DEFAULT_RULES) -> None:
        self.rules = rules
        self._tags_by_digest: dict[str, tuple[str, str]] = {}
        self._overrides: dict[str, dict[str, object]] = {}

    def know(self, repository: str, tag: str) -> str:
        """Register `repository:tag` as pushed; returns its digest."""
        digest = manifest_digest(repository, tag)
        self._tags_by_digest[digest] = (repository, tag)
        return digest

    def image_by_reference(self, repository: str, reference: str) -> tuple[str, str] | None:
        """(repository, tag) of a known image named by tag or by digest, else None."""
        if reference.startswith("sha256:"):
            known = self._tags_by_digest.get(reference)
            return known if known and known[0] == repository else None
        return (repository, reference) if manifest_digest(repository, reference) in self._tags_by_digest else None

    def knows_repository(self, repository: str) -> bool:
        return any(repo == repository for repo, _ in self._tags_by_digest.values())

    def tag_of(self, image: str) -> str | None:
        """The tag an image reference runs, resolving `@sha256:` through known digests."""
        return self._name_and_tag(image)[1]

    def _name_and_tag(self, image: str) -> tuple[str, str | None]:
        """(repository name without registry, tag), resolving digests the registry knows."""
        repository, tag, digest = split_image(image)
        known = self._tags_by_digest.get(digest) if digest else None
        return repository.rsplit("/", 1)[-1], known[1] if known else tag

    def override(self, target: str, **fields: object) -> None:
        """Set a run-time fault on a tag (`v1.2.0`) or one repository's tag (`ai-service:v1.2.0`)."""
        self._overrides.setdefault(target, {}).update(fields)

    def clear_overrides(self) -> None:
        """Drop every run-time fault."""
        self._overrides.clear()

    def for_image(self, image: str, namespace: str | None = None, host: str | None = None) -> VersionBehavior:
        """The behavior of pods running `image` in `namespace` (for a request to `host`): the first rule
        that applies, then faults."""
        name, tag = self._name_and_tag(image)
        tag = tag or "latest"
        base = next((r.behavior for r in self.rules if r.applies(tag, namespace, host)), VersionBehavior())
        fields = {**self._overrides.get(tag, {}), **self._overrides.get(f"{name}:{tag}", {})}
        return replace(base, **fields) if fields else base
