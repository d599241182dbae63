"""Watches through the official client: replay from a resourceVersion, selector
semantics, initial events, the watch-list bookmark, timeouts and 410 Gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.sandbox.cluster_fixture import running_cluster


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    api = client.CoreV1Api(api_client)
    api.create_namespace({"metadata": {"name": "production"}})
    return api


def events(core: client.CoreV1Api, **options: object) -> list[tuple[str, str]]:
    """(type, name) of every config map event a watch delivers within one second."""
    stream = watch.Watch().stream(core.list_namespaced_config_map, "production", timeout_seconds=1, **options)
    return [(e["type"], e["object"].metadata.name) for e in stream]


def test_watch_from_a_resource_version_replays_later_changes(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("production", {"metadata": {"name": "before"}})
    since = core.list_namespaced_config_map("production").metadata.resource_version
    core.create_namespaced_config_map("production", {"metadata": {"name": "settings"}})
    core.patch_namespaced_config_map("settings", "production", {"data": {"k": "v"}})
    core.delete_namespaced_config_map("settings", "production")
    assert events(core, resource_version=since) == [("ADDED", "settings"), ("MODIFIED", "settings"),
                                                    ("DELETED", "settings")]


def test_watch_without_a_resource_version_starts_with_existing_objects(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("production", {"metadata": {"name": "b"}})
    core.create_namespaced_config_map("production", {"metadata": {"name": "a"}})
    assert events(core) == [("ADDED", "a"), ("ADDED", "b")]


def test_watch_with_a_selector_sees_objects_enter_and_leave_it(core: client.CoreV1Api) -> None:
    since = core.list_namespaced_config_map("production").metadata.resource_version
    core.create_namespaced_config_map("production", {"metadata": {"name": "cm", "labels": {"color": "blue"}}})
    core.patch_namespaced_config_map("cm", "production", {"metadata": {"labels": {"color": "green"}}})
    core.patch_namespaced_config_map("cm", "production", {"metadata": {"labels": {"color": "blue"}}})
    core.create_namespaced_config_map("production", {"metadata": {"name": "other", "labels": {"color": "red"}}})
    assert events(core, resource_version=since, label_selector="color=blue") == [
        ("ADDED", "cm"), ("DELETED", "cm"), ("ADDED", "cm")]


def test_watch_list_ends_initial_events_with_a_bookmark(api_client: client.ApiClient,
                                                        core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("production", {"metadata": {"name": "settings"}})
    stream = watch.Watch().stream(core.list_namespaced_config_map, "production", timeout_seconds=1,
                                  send_initial_events=True, allow_watch_bookmarks=True,
                                  resource_version_match="NotOlderThan", resource_version="0")
    seen = [(e["type"], e["raw_object"]["metadata"]) for e in stream]
    assert [kind for kind, _ in seen] == ["ADDED", "BOOKMARK"]
    assert seen[1][1]["annotations"] == {"k8s.io/initial-events-end": "true"}


@pytest.fixture
def short_history_core(tmp_path: Path) -> Iterator[client.CoreV1Api]:
    with running_cluster(tmp_path, history_limit=5) as cluster:
        with client.ApiClient(client.Configuration(host=cluster.base_url)) as api:
            core = client.CoreV1Api(api)
            core.create_namespace({"metadata": {"name": "production"}})
            yield core


def test_watch_from_a_compacted_resource_version_is_gone(short_history_core: client.CoreV1Api) -> None:
    since = short_history_core.list_namespaced_config_map("production").metadata.resource_version
    for index in range(10):
        short_history_core.create_namespaced_config_map("production", {"metadata": {"name": f"cm-{index}"}})
    with pytest.raises(ApiException) as raised:
        events(short_history_core, resource_version=since)
    assert raised.value.status == 410
    assert "too old resource version" in raised.value.reason
