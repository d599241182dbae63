"""The fields a direct release writes in the cluster, which ArgoCD must therefore leave alone.

Each is (API group, kind, name, JSON pointer) with `{service}` standing for every policy service; the
Applications under infra/k8s-manifests/argocd list exactly these as `ignoreDifferences` (tests/gitops).
Objects the release creates that git does not hold (`<service>-canary`, the release-record ConfigMaps)
carry no ArgoCD tracking, so ArgoCD neither compares nor prunes them.
"""

from __future__ import annotations

from typing import NamedTuple


class OwnedField(NamedTuple):
    """One field a release writes, and the code that writes it."""

    group: str
    kind: str
    name: str
    pointer: str
    writer: str

    def expand(self, services: list[str]) -> set[tuple[str, str, str, str]]:
        """(group, kind, name, pointer) for every service."""
        return {(self.group, self.kind, self.name.format(service=s), self.pointer) for s in services}


_IMAGE = "/spec/template/spec/containers/0/image"

PRODUCTION = (
    OwnedField("", "Service", "{service}", "/spec/selector",
               "Routing.switch_selector (blue-green switch, canary end), Routing.select_every_version (canary)"),
    OwnedField("", "Service", "{service}-preview", "/spec/selector", "BlueGreen.deploy_into (the idle color, before its validation)"),
    OwnedField("networking.istio.io", "VirtualService", "{service}", "/spec/http/1/route/0/weight", "Routing.set_route_weights"),
    OwnedField("networking.istio.io", "VirtualService", "{service}", "/spec/http/1/route/1/weight", "Routing.set_route_weights"),
    OwnedField("networking.istio.io", "DestinationRule", "{service}", "/spec/subsets", "Routing.set_subsets (canary)"),
    *(OwnedField("apps", "Deployment", f"{{service}}-{color}", pointer, writer)
      for color in ("blue", "green")
      for pointer, writer in (("/spec/replicas", "BlueGreen.deploy_into, BlueGreen.retire (scale to 0)"),
                              (_IMAGE, "BlueGreen.deploy_into, CanaryRollout.promote, Restorer (set_image)"))),
)

STAGING = (OwnedField("apps", "Deployment", "{service}", _IMAGE, "staging.roll_out (set_image, undo)"),)


def application_for(application: dict, mode: str) -> dict:
    """The Application as a `mode` install needs it: direct keeps the fields above out of ArgoCD's hands; gitops
    gives them back, since there the release commits them and a respected ignoreDifferences would never sync them."""
    if mode == "direct":
        return application
    spec = {k: v for k, v in application["spec"].items() if k != "ignoreDifferences"}
    sync = dict(spec.get("syncPolicy") or {})
    sync["syncOptions"] = [o for o in sync.get("syncOptions", []) if not o.startswith("RespectIgnoreDifferences")]
    return {**application, "spec": {**spec, "syncPolicy": sync}}
