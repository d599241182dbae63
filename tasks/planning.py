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
    registry_api = rt.settings.registry_api(policy)
    images = {}
    for name in names:
        repository = policy.service(name).repository
        digest = resolve_digest(rt.http, registry_api, repository, tag)
        images[name] = ImagePlan(name, repository, tag, digest, policy.registry)
        log.info("%s: %s resolved to %s", name, images[name].by_tag, digest)
    live = {name: rt.blue_green.live_image(name) for name in names}
    if not force and all(live[name] == images[name].by_digest for name in names):
        raise PlanError(f"{tag} is already live in production on {', '.join(names)}: pass force=true to release it again")
    return ReleasePlan(
        tag=tag,
        services=names,
        groups=release_groups(policy, names),
        images={name: ImageRef(by_digest=i.by_digest, by_tag=i.by_tag, digest=i.digest) for name, i in images.items()},
        previous=live,
    )
