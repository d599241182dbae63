"""ConfigMaps that hold JSON documents: create, read, list by label, compare-and-swap update."""

from __future__ import annotations

import json
from collections.abc import Callable

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from delivery.kube.connection import KubeConnection

DOCUMENT_KEY = "record.json"


class ConflictingUpdate(RuntimeError):
    """Someone else kept changing the ConfigMap while we updated it."""


class JsonConfigMaps:
    """One JSON document per ConfigMap under `data["record.json"]`, with labels people can select on."""

    def __init__(self, conn: KubeConnection, namespace: str) -> None:
        self.conn, self.namespace = conn, namespace

    def create(self, name: str, labels: dict[str, str], document: dict) -> None:
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data=_data(document))
        self.conn.call(self.conn.core.create_namespaced_config_map, self.namespace, body)

    def read(self, name: str) -> dict | None:
        """The document, or None when the ConfigMap does not exist."""
        found = self._read(name)
        return json.loads(found.data[DOCUMENT_KEY]) if found is not None else None

    def list(self, label_selector: str) -> list[dict]:
        found = self.conn.call(self.conn.core.list_namespaced_config_map, self.namespace, label_selector=label_selector)
        return [json.loads(item.data[DOCUMENT_KEY]) for item in found.items if DOCUMENT_KEY in (item.data or {})]

    def update(self, name: str, change: Callable[[dict], tuple[dict, dict[str, str]]], attempts: int = 10) -> dict:
        """Read, apply `change(document) -> (document, labels)`, replace with the read resourceVersion; re-read on 409."""
        for _ in range(attempts):
            current = self._read(name)
            if current is None:
                raise LookupError(f"configmap {self.namespace}/{name} does not exist")
            document, labels = change(json.loads(current.data[DOCUMENT_KEY]))
            current.data = _data(document)
            current.metadata.labels = {**(current.metadata.labels or {}), **labels}
            try:
                self.conn.call(self.conn.core.replace_namespaced_config_map, name, self.namespace, current)
                return document
            except ApiException as err:
                if err.status != 409:
                    raise
        raise ConflictingUpdate(f"configmap {self.namespace}/{name} kept changing; {attempts} updates conflicted")

    def _read(self, name: str) -> client.V1ConfigMap | None:
        try:
            return self.conn.call(self.conn.core.read_namespaced_config_map, name, self.namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise


def _data(document: dict) -> dict[str, str]:
    return {DOCUMENT_KEY: json.dumps(document, indent=2, sort_keys=True)}
