"""Manifests the release applies, built from the policy: the colored Deployment of a service."""

from __future__ import annotations

from delivery.policy.models import Service


def colored_deployment(
    service: Service, namespace: str, color: str, image: str, progress_deadline_seconds: int, replicas: int | None = None
) -> dict:
    """`<service>-<color>` (R-BG-5): labels app and version, the policy's replicas, resources, env and probes."""
    labels = {"app": service.name, "version": color}
    container = {
        "name": service.name,
        "image": image,
        "ports": [{"name": "http", "containerPort": service.port}],
        "env": [{"name": key, "value": value} for key, value in service.env.items()],
        "resources": service.resources.model_dump(),
        "readinessProbe": {"httpGet": {"path": service.health_path, "port": service.port}},
        "livenessProbe": {"httpGet": {"path": service.health_path, "port": service.port}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{service.name}-{color}", "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "replicas": service.replicas if replicas is None else replicas,
            "progressDeadlineSeconds": progress_deadline_seconds,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": [container]}},
        },
    }
