"""`tripgen-release demo --regions`: a second sandbox cluster, Korea South, that each release reaches after the
primary's watch passed (R-DR-1); a failure there restores both regions."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from delivery.sandbox.endpoints import Endpoints

PRIMARY, DR = "korea-central", "korea-south"


def regions_policy(policy: Path, state: Path) -> Path:
    """The demo policy with `regions`: Korea Central (the primary, the demo's first cluster), then Korea South."""
    data = yaml.safe_load(policy.read_text())
    data["regions"] = [{"name": PRIMARY, "role": "primary"}, {"name": DR, "role": "dr"}]
    path = state / "policy-regions.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def region_settings(cluster: Path, endpoints: Endpoints) -> dict[str, str]:
    """The worker's TRIPGEN_REGION_ENDPOINTS for Korea South's sandbox serving from `cluster`."""
    region = {"kubeconfig": str(cluster / "kubeconfig"), "gateway_url": endpoints.gateway, "prometheus_url": endpoints.prometheus}
    return {"TRIPGEN_REGION_ENDPOINTS": json.dumps({DR: region})}
