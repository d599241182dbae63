"""The cluster adapter: the operations releases need, over the official kubernetes client."""

from delivery.kube.connection import KubeConnection, connect
from delivery.kube.deployments import Deployments, RolloutResult
from delivery.kube.diagnostics import Diagnostics
from delivery.kube.routing import Routing

__all__ = ["Deployments", "Diagnostics", "KubeConnection", "Routing", "RolloutResult", "connect"]
