"""Plan a release: validate the tag and services, resolve each image to a digest, order the groups."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

import httpx
import semver
from pydantic import AfterValidator, WithJsonSchema

from delivery.policy.models import Policy

_TAG = re.compile(r"^v(?P<version>.+)$")
# semver.org's regular expression with the `v`: the parameter schema the UI and the server check before any run
TAG_PATTERN = (r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
               r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
               r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")


def _checked_tag(tag: str) -> str:
    parse_tag(tag)  # a PlanError (a ValueError) says what a tag looks like
    return tag


# a flow parameter: the UI and the server check the pattern before any run; the flow says what is wrong
VersionTag = Annotated[str, AfterValidator(_checked_tag), WithJsonSchema({"type": "string", "pattern": TAG_PATTERN})]

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


class PlanError(ValueError):
    """A release that must not start; the message says what to fix."""


def parse_tag(tag: str) -> semver.Version:
    """The semantic version of `v<major>.<minor>.<patch>[-pre][+build]`; PlanError otherwise."""
    match = _TAG.match(tag.strip()) if isinstance(tag, str) else None
    try:
        if match is None:
            raise ValueError
        return semver.Version.parse(match["version"])
    except ValueError:
        raise PlanError(f"tag '{tag}' is not v<major>.<minor>.<patch> (e.g. v1.2.0 or v1.3.0-rc.1)") from None


@dataclass(frozen=True)
class ImagePlan:
    """One service's image: the tag people read and the digest the cluster runs."""

    service: str
    repository: str
    tag: str
    digest: str
    registry: str

    @property
    def by_digest(self) -> str:
        return f"{self.registry}/{self.repository}@{self.digest}"

    @property
    def by_tag(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"


def select_services(policy: Policy, services: list[str] | None) -> list[str]:
    """The services to release in policy order (all when none are named); PlanError for unknown names."""
    known = [svc.name for svc in policy.services]
    if not services:
        return known
    unknown = [name for name in services if name not in known]
    if unknown:
        raise PlanError(f"unknown service(s) {', '.join(unknown)}: choose from {', '.join(known)}")
    return [name for name in known if name in services]


def release_groups(policy: Policy, services: list[str]) -> list[list[str]]:
    """The dependency groups (R-PAR) in order, keeping only the services being released."""
    groups = [[name for name in group.services if name in services] for group in policy.deployment_order.groups]
    return [group for group in groups if group]


def resolve_digest(http: httpx.Client, registry_url: str, repository: str, tag: str) -> str:
    """`HEAD /v2/<repository>/manifests/<tag>` (OCI distribution spec) -> the Docker-Content-Digest."""
    url = f"{registry_url.rstrip('/')}/v2/{repository}/manifests/{tag}"
    try:
        response = http.head(url, headers={"Accept": MANIFEST_ACCEPT})
    except httpx.TransportError as err:
        raise ConnectionError(f"registry {registry_url} is unreachable ({type(err).__name__})") from err
    if response.status_code == 404:
        raise PlanError(f"image {repository}:{tag} is not in the registry {registry_url}: push it first")
    if response.status_code in (401, 403):
        raise PlanError(f"registry {registry_url} refused access to {repository} (HTTP {response.status_code}): check its credentials")
    if response.status_code >= 500 or response.status_code == 429:
        raise ConnectionError(f"registry {registry_url} answered HTTP {response.status_code}")
    digest = response.headers.get("Docker-Content-Digest", "")
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise PlanError(f"registry {registry_url} gave no valid digest for {repository}:{tag} (got '{digest}')")
    return digest


def batches(group: list[str], size: int) -> list[list[str]]:
    """A dependency group cut into batches of at most `size` services released at once (R-PAR)."""
    return [group[i : i + size] for i in range(0, len(group), size)]
