"""The release's part of the production overlay: one patch file per object it changes, under `<overlay>/release/`.

Objects the overlay renders get a patch (strategic merge for core kinds, JSON merge for CRDs: a null
removes a field, lists are replaced); objects it does not render (a canary Deployment) are added as
resources. Everything else in the overlay stays as people wrote it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

RELEASE_DIR = "release"


def merged(base: dict, change: dict) -> dict:
    """`change` deep-merged into `base`: maps merge, lists and scalars replace, None stays (it removes on apply)."""
    out = dict(base)
    for key, value in change.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class ReleaseOverlay:
    """The kustomize overlay at `root/path`, and the patch and resource files the release keeps in it."""

    def __init__(self, root: Path, path: str) -> None:
        self.root, self.path = root, path
        self.dir = root / path

    def rendered(self) -> list[dict]:
        """The overlay as ArgoCD renders it (`kubectl kustomize`)."""
        done = subprocess.run(["kubectl", "kustomize", str(self.dir)], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"kubectl kustomize {self.path} failed: {done.stderr.strip()}")
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]

    def renders(self, kind: str, name: str) -> bool:
        return any(o["kind"] == kind and o["metadata"]["name"] == name for o in self.rendered())

    def change(self, manifest: dict) -> str:
        """Merge `manifest` (apiVersion, kind, metadata.name and the fields to set) into its file; returns the repo path."""
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        relative = f"{RELEASE_DIR}/{kind.lower()}-{name}.yaml"
        file = self.dir / relative
        current = yaml.safe_load(file.read_text()) if file.exists() else None
        body = _without_namespace(manifest)
        if current is None:
            listed_as = "patches" if self.renders(kind, name) else "resources"
            self._list(listed_as, relative)
            current = {}
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(yaml.safe_dump(merged(current, body), sort_keys=False))
        return f"{self.path}/{relative}"

    def files(self) -> list[str]:
        """Every path the release may touch (for commits and reverts), relative to the repository."""
        return [f"{self.path}/kustomization.yaml", f"{self.path}/{RELEASE_DIR}"]

    def _list(self, field: str, relative: str) -> None:
        """Add `relative` to the kustomization's `patches` or `resources`, once."""
        file = self.dir / "kustomization.yaml"
        kustomization = yaml.safe_load(file.read_text())
        entries = kustomization.setdefault(field, [])
        entry = {"path": relative} if field == "patches" else relative
        if entry not in entries:
            entries.append(entry)
            file.write_text(yaml.safe_dump(kustomization, sort_keys=False))


def _without_namespace(manifest: dict) -> dict:
    """The overlay sets the namespace; a patch that named one too would match nothing before it does."""
    metadata = {k: v for k, v in manifest["metadata"].items() if k != "namespace"}
    return {**manifest, "metadata": metadata}
