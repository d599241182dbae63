"""The emulated API server's object verbs, through the official client over HTTP:
create, get, list with selectors and pages, replace with conflicts, delete with cascade."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.sandbox.cluster_fixture import deployment_manifest


def status_of(error: ApiException) -> dict:
    """The `Status` body the server answered with."""
    return json.loads(error.body)


def config_map(name: str, labels: dict[str, str] | None = None, **metadata: object) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}, **metadata}, "data": {"k": "v"}}


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    api = client.CoreV1Api(api_client)
    api.create_namespace({"metadata": {"name": "production"}})
    return api


def test_created_object_gets_identity_and_reads_back(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("production", config_map("settings"))
    read = core.read_namespaced_config_map("settings", "production")
    assert created.metadata.uid and created.metadata.creation_timestamp
    assert read.metadata.uid == created.metadata.uid
    assert read.metadata.resource_version == created.metadata.resource_version
    assert read.data == {"k": "v"}


def test_resource_versions_increase_across_the_cluster(core: client.CoreV1Api) -> None:
    first = core.create_namespaced_config_map("production", config_map("a"))
    second = core.create_namespaced_config_map("production", config_map("b"))
    listed = core.list_namespaced_config_map("production")
    assert int(first.metadata.resource_version) < int(second.metadata.resource_version)
    assert int(listed.metadata.resource_version) >= int(second.metadata.resource_version)


def test_creating_twice_answers_already_exists(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("production", config_map("settings"))
    with pytest.raises(ApiException) as raised:
        core.create_namespaced_config_map("production", config_map("settings"))
    assert raised.value.status == 409
    status = status_of(raised.value)
    assert status["kind"] == "Status" and status["status"] == "Failure"
    assert status["reason"] == "AlreadyExists" and status["code"] == 409
    assert status["details"] == {"name": "settings", "kind": "configmaps"}
    assert status["message"] == 'configmaps "settings" already exists'


def test_missing_object_and_missing_namespace_are_not_found(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("nothing", "production")
    with pytest.raises(ApiException) as no_namespace:
        core.create_namespaced_config_map("staging", config_map("settings"))
    assert missing.value.status == 404 and status_of(missing.value)["reason"] == "NotFound"
    assert status_of(no_namespace.value)["message"] == 'namespaces "staging" not found'


def test_replace_with_a_stale_resource_version_conflicts(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("production", config_map("settings"))
    core.replace_namespaced_config_map("settings", "production", {
        **config_map("settings"), "metadata": {"name": "settings", "resourceVersion": created.metadata.resource_version},
        "data": {"k": "fresh"}})
    with pytest.raises(ApiException) as raised:
        core.replace_namespaced_config_map("settings", "production", {
            "metadata": {"name": "settings", "resourceVersion": created.metadata.resource_version},
            "data": {"k": "stale"}})
    assert raised.value.status == 409 and status_of(raised.value)["reason"] == "Conflict"
    assert "the object has been modified" in status_of(raised.value)["message"]
    assert core.read_namespaced_config_map("settings", "production").data == {"k": "fresh"}


def test_replace_without_resource_version_is_unconditional(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("production", config_map("settings"))
    replaced = core.replace_namespaced_config_map("settings", "production",
                                                  {"metadata": {"name": "settings"}, "data": {"k": "new"}})
    assert replaced.data == {"k": "new"}


def test_invalid_deployment_is_rejected_with_field_causes(api_client: client.ApiClient,
                                                          core: client.CoreV1Api) -> None:
    manifest = deployment_manifest("web", "nginx:1.27")
    manifest["spec"]["selector"] = {"matchLabels": {"app": "api"}}
    with pytest.raises(ApiException) as raised:
        client.AppsV1Api(api_client).create_namespaced_deployment("production", manifest)
    status = status_of(raised.value)
    assert raised.value.status == 422 and status["reason"] == "Invalid"
    assert status["message"].startswith('Deployment.apps "web" is invalid: spec.template.metadata.labels: ')
    assert [(c["field"], c["reason"]) for c in status["details"]["causes"]] == [
        ("spec.template.metadata.labels", "FieldValueInvalid")]


def test_generation_counts_spec_changes_only(api_client: client.ApiClient, core: client.CoreV1Api) -> None:
    apps = client.AppsV1Api(api_client)
    created = apps.create_namespaced_deployment("production", deployment_manifest("web", "nginx:1.27"))
    relabelled = apps.patch_namespaced_deployment("web", "production", {"metadata": {"labels": {"team": "trips"}}})
    rescaled = apps.patch_namespaced_deployment("web", "production", {"spec": {"replicas": 2}})
    assert created.metadata.generation == 1
    assert relabelled.metadata.generation == 1
    assert rescaled.metadata.generation == 2


def test_server_defaults_built_in_fields(api_client: client.ApiClient, core: client.CoreV1Api) -> None:
    deployment = client.AppsV1Api(api_client).create_namespaced_deployment(
        "production", deployment_manifest("web", "nginx:1.27"))
    service = core.create_namespaced_service("production", {
        "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    assert deployment.spec.strategy.type == "RollingUpdate"
    assert deployment.spec.strategy.rolling_update.max_surge == "25%"
    assert deployment.spec.progress_deadline_seconds == 600
    assert deployment.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"
    assert service.spec.type == "ClusterIP" and service.spec.cluster_ip.startswith("10.96.")
    assert service.spec.ports[0].protocol == "TCP" and service.spec.ports[0].target_port == 80


def test_label_selectors_filter_lists(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("production", config_map("blue", {"app": "trip", "version": "blue"}))
    core.create_namespaced_config_map("production", config_map("green", {"app": "trip", "version": "green"}))
    core.create_namespaced_config_map("production", config_map("canary", {"app": "trip", "canary": "true"}))
    core.create_namespaced_config_map("production", config_map("other", {"app": "user"}))

    def names(selector: str) -> list[str]:
        return [cm.metadata.name for cm in core.list_namespaced_config_map("production",
                                                                           label_selector=selector).items]

    assert names("app=trip,version in (blue,green)") == ["blue", "green"]
    assert names("app==trip,!canary") == ["blue", "green"]
    assert names("app=trip,version notin (blue)") == ["canary", "green"]
    assert names("version!=blue,app") == ["canary", "green", "other"]
    assert names("canary") == ["canary"]
    with pytest.raises(ApiException) as raised:
        names("app in blue")
    assert raised.value.status == 400 and status_of(raised.value)["reason"] == "BadRequest"


def test_field_selectors_filter_by_name_and_namespace(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "staging"}})
    for namespace in ("production", "staging"):
        core.create_namespaced_config_map(namespace, config_map("settings"))
        core.create_namespaced_config_map(namespace, config_map("flags"))
    everywhere = core.list_config_map_for_all_namespaces(field_selector="metadata.name=settings")
    staging = core.list_config_map_for_all_namespaces(field_selector="metadata.namespace==staging,"
                                                                     "metadata.name!=settings")
    assert [(c.metadata.namespace, c.metadata.name) for c in everywhere.items] == [("production", "settings"),
                                                                                    ("staging", "settings")]
    assert [(c.metadata.namespace, c.metadata.name) for c in staging.items] == [("staging", "flags")]


def test_lists_page_with_limit_and_continue(core: client.CoreV1Api) -> None:
    for name in ("a", "b", "c", "d", "e"):
        core.create_namespaced_config_map("production", config_map(name))
    first = core.list_namespaced_config_map("production", limit=2)
    second = core.list_namespaced_config_map("production", limit=2, _continue=first.metadata._continue)
    third = core.list_namespaced_config_map("production", limit=2, _continue=second.metadata._continue)
    assert [c.metadata.name for c in first.items + second.items + third.items] == ["a", "b", "c", "d", "e"]
    assert first.metadata.remaining_item_count == 3 and not third.metadata._continue


def test_dry_run_validates_without_persisting(core: client.CoreV1Api) -> None:
    preview = core.create_namespaced_config_map("production", config_map("settings"), dry_run="All")
    assert preview.metadata.name == "settings"
    assert core.list_namespaced_config_map("production").items == []


def test_delete_cascades_to_dependents_unless_orphaned(core: client.CoreV1Api) -> None:
    for owner in ("parent", "keeper"):
        uid = core.create_namespaced_config_map("production", config_map(owner)).metadata.uid
        reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": uid}
        core.create_namespaced_config_map("production", config_map(f"{owner}-child", ownerReferences=[reference]))
    core.delete_namespaced_config_map("parent", "production")
    core.delete_namespaced_config_map("keeper", "production", propagation_policy="Orphan")
    left = {c.metadata.name: c for c in core.list_namespaced_config_map("production").items}
    assert sorted(left) == ["keeper-child"]
    assert not left["keeper-child"].metadata.owner_references


def test_deleting_a_namespace_deletes_its_contents(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("production", config_map("settings"))
    core.delete_namespace("production")
    assert core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=production").items == []
    with pytest.raises(ApiException):
        core.read_namespace("production")


def test_delete_collection_removes_what_the_selector_picks(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("production", config_map("old", {"stale": "true"}))
    core.create_namespaced_config_map("production", config_map("new"))
    core.delete_collection_namespaced_config_map("production", label_selector="stale=true")
    assert [c.metadata.name for c in core.list_namespaced_config_map("production").items] == ["new"]


def test_delete_precondition_on_uid_conflicts(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("production", config_map("settings"))
    with pytest.raises(ApiException) as raised:
        core.delete_namespaced_config_map("settings", "production", body={"preconditions": {"uid": "other"}})
    assert raised.value.status == 409
    assert core.read_namespaced_config_map("settings", "production").metadata.name == "settings"
