"""Plan a release: tag, services, image digests, and whether it is already live."""

from __future__ import annotations

from prefect import get_run_logger, task

from delivery.release.plan import ImagePlan, parse_tag, release_groups, resolve_digest, select_services
from delivery.release.plan import PlanError
from delivery.release.retrying import HTTP_STEP
from delivery.release.runtime import runtime
from delivery.release.state import ImageRef, ReleasePlan
from tasks.release_record import refuse_while_a_dead_run_left_a_record
from tasks.retry import transient_only


@task(name="plan release", retry_condition_fn=transient_only, **HTTP_STEP)
def plan_release(tag: str, services: list[str] | None, force: bool) -> ReleasePlan:
    """Validate the tag and services, resolve every image to a digest; refuse a tag already live."""
    rt, log = runtime(), get_run_logger()
    policy = rt.policy
    parse_tag(tag)
    names = select_services(policy, services)
    refuse_while_a_dead_run_left_a_record()
    images = _images(tag, names)
    for name, image in images.items():
        log.info("%s: %s resolved to %s", name, image.by_tag, image.digest)
    live = {name: rt.blue_green.live_image(name) for name in names}
    if not force and all(live[name] == images[name].by_digest for name in names):
        raise PlanError(f"{tag} is already live in production on {', '.join(names)}: pass force=true to release it again")
    return ReleasePlan(tag=tag, services=names, groups=release_groups(policy, names), images=_refs(images), previous=live)


@task(name="resolve images", retry_condition_fn=transient_only, **HTTP_STEP)
def resolve_images(tag: str, services: list[str]) -> dict[str, ImageRef]:
    """The registry's digest of each service's `tag` now (a tag re-pushed since the plan gives another digest)."""
    return _refs(_images(tag, services))


def _images(tag: str, names: list[str]) -> dict[str, ImagePlan]:
    rt = runtime()
    registry_api = rt.settings.registry_api(rt.policy)
    return {name: ImagePlan(name, rt.policy.service(name).repository, tag,
                            resolve_digest(rt.http, registry_api, rt.policy.service(name).repository, tag), rt.policy.registry)
            for name in names}


def _refs(images: dict[str, ImagePlan]) -> dict[str, ImageRef]:
    return {name: ImageRef(by_digest=i.by_digest, by_tag=i.by_tag, digest=i.digest) for name, i in images.items()}
