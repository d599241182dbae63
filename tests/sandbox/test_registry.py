"""The sandbox registry speaks the OCI distribution API for the images it knows."""

import hashlib

import httpx
import pytest

from delivery.sandbox.behavior import BehaviorBook
from delivery.sandbox.registry import build_registry_app


@pytest.fixture
def registry():
    book = BehaviorBook()
    book.know("trip-service", "v1.2.0")
    transport = httpx.ASGITransport(app=build_registry_app(book))
    return httpx.AsyncClient(transport=transport, base_url="http://registry.test")


async def _head_and_get(client, path):
    return await client.head(path), await client.get(path)


@pytest.mark.anyio
async def test_known_tag_has_a_stable_digest_that_is_the_manifest_hash(registry):
    head, get = await _head_and_get(registry, "/v2/trip-service/manifests/v1.2.0")
    assert head.status_code == get.status_code == 200
    digest = head.headers["Docker-Content-Digest"]
    assert digest == get.headers["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(get.content).hexdigest()
    assert get.json()["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    again = await registry.head("/v2/trip-service/manifests/v1.2.0")
    assert again.headers["Docker-Content-Digest"] == digest
    by_digest = await registry.get(f"/v2/trip-service/manifests/{digest}")
    assert by_digest.status_code == 200 and by_digest.content == get.content


@pytest.mark.anyio
async def test_unknown_tag_and_unknown_repository_are_404(registry):
    tag = await registry.get("/v2/trip-service/manifests/v9.9.9")
    assert tag.status_code == 404 and tag.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    name = await registry.get("/v2/payment-service/manifests/v1.2.0")
    assert name.status_code == 404 and name.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    head = await registry.head("/v2/trip-service/manifests/v9.9.9")
    assert head.status_code == 404


@pytest.mark.anyio
async def test_a_digest_of_another_repository_is_not_served(registry):
    get = await registry.get("/v2/trip-service/manifests/v1.2.0")
    digest = get.headers["Docker-Content-Digest"]
    assert (await registry.get(f"/v2/user-service/manifests/{digest}")).status_code == 404


@pytest.mark.anyio
async def test_api_base(registry):
    base = await registry.get("/v2/")
    assert base.status_code == 200 and base.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.fixture
def anyio_backend():
    return "asyncio"
