"""A small kustomize for the overlays under infra/k8s-manifests, so the sandbox seeds from them without kubectl.

It knows what those kustomizations use and refuses anything else: `resources` (files and directories),
`patches` (a JSON 6902 list, or `$patch: delete`, applied to the objects whose kind and name fully match
the `target` regexes), then `namespace`, then `images` (`newName`, `newTag`, `digest`), in kustomize's
order. tests/gitops checks it renders exactly what `kubectl kustomize` does.
"""

from __future__ import annotations

import re
from pathlib import Path

import jsonpatch
import yaml

MANIFESTS = Path(__file__).resolve().parents[2] / "infra" / "k8s-manifests"
_FIELDS = {"kustomization": {"apiVersion", "kind", "resources", "patches", "namespace", "images"},
           "patch": {"path", "patch", "target"}, "target": {"kind", "name"}, "image": {"name", "newName", "newTag", "digest"}}
_CLUSTER_SCOPED = {"Namespace"}


def render(directory: Path) -> list[dict]:
    """The objects `kubectl kustomize directory` prints, in the order the resources list them."""
    kustomization = _known(yaml.safe_load((directory / "kustomization.yaml").read_text()), "kustomization", directory)
    objects = [obj for entry in kustomization.get("resources", []) for obj in _load(directory / entry)]
    for patch in kustomization.get("patches", []):
        objects = _patched(objects, _known(patch, "patch", directory), directory)
    if "namespace" in kustomization:
        for obj in objects:
            if obj["kind"] not in _CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = kustomization["namespace"]
    for image in kustomization.get("images", []):
        for obj in objects:
            _set_image(obj, _known(image, "image", directory))
    return objects


def _known(entry: dict, what: str, directory: Path) -> dict:
    unknown = set(entry) - _FIELDS[what]
    if unknown:
        raise ValueError(f"{directory}/kustomization.yaml: {what} field(s) {sorted(unknown)} are not supported here")
    return entry


def _load(path: Path) -> list[dict]:
    if path.is_dir():
        return render(path)
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _patched(objects: list[dict], patch: dict, directory: Path) -> list[dict]:
    body = yaml.safe_load((directory / patch["path"]).read_text() if "path" in patch else patch["patch"])
    if not isinstance(body, list) and body.get("$patch") != "delete":
        raise ValueError(f"{directory}/kustomization.yaml: only JSON 6902 and `$patch: delete` patches are supported")
    target = _known(patch["target"], "target", directory)
    result = []
    for obj in objects:
        if not all(re.fullmatch(target[key], obj[key] if key == "kind" else obj["metadata"][key]) for key in target):
            result.append(obj)
        elif isinstance(body, list):
            result.append(jsonpatch.apply_patch(obj, body))
    return result


def _set_image(obj: dict, image: dict) -> None:
    pod = obj.get("spec", {}).get("template", {}).get("spec", {})
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        name, reference = _split_image(container["image"])
        if name == image["name"]:
            if "digest" in image:
                reference = "@" + image["digest"]
            elif "newTag" in image:
                reference = ":" + image["newTag"]
            container["image"] = image.get("newName", name) + reference


def _split_image(image: str) -> tuple[str, str]:
    """(name, `:tag` or `@digest` or "")."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, "@" + digest
    colon = image.rfind(":")
    return (image[:colon], image[colon:]) if colon > image.rfind("/") else (image, "")
