"""The patch formats of the Kubernetes API: strategic merge patch (lists merged by key,
`$patch`/`$retainKeys`/`$setElementOrder`/`$deleteFromPrimitiveList` directives),
JSON merge patch (RFC 7386), JSON patch (RFC 6902) and server-side apply."""

from __future__ import annotations

import json

import jsonpatch
import yaml

from delivery.sandbox.resources import ResourceType
from delivery.sandbox.store import ApiError, bad_request

STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE, STRATEGIC, APPLY)

_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
_MERGE_KEYS = {
    **{name: "name" for name in _CONTAINER_LISTS},
    "volumes": "name", "env": "name", "imagePullSecrets": "name", "resourceClaims": "name",
    "volumeMounts": "mountPath", "volumeDevices": "devicePath", "hostAliases": "ip",
    "ownerReferences": "uid", "conditions": "type", "topologySpreadConstraints": "topologyKey",
    "taints": "key",
}
_MERGED_PRIMITIVE_LISTS = ("finalizers",)


def merge_key(path: tuple[str, ...]) -> str | None:
    """The key list items at `path` (field names from the object's root) are merged by,
    or None when a strategic merge replaces the list whole."""
    field = path[-1]
    if field == "ports":
        return "containerPort" if len(path) > 1 and path[-2] in _CONTAINER_LISTS else "port"
    return _MERGE_KEYS.get(field)


def strategic_merge_patch(original: dict, patch: dict) -> dict:
    """Apply a strategic merge patch to a built-in object; neither argument is changed."""
    if not isinstance(patch, dict):
        raise bad_request("a strategic merge patch must be a JSON object")
    return _merge_map(original, patch, ())


def _merge_map(original: dict, patch: dict, path: tuple[str, ...]) -> dict:
    if patch.get("$patch") == "replace":
        return _merge_map({}, {k: v for k, v in patch.items() if k != "$patch"}, path)
    result = dict(original)
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        current = result.get(key)
        if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = _merge_map(current if isinstance(current, dict) else {}, value, (*path, key))
        elif isinstance(value, list):
            result[key] = _merge_list(current if isinstance(current, list) else [], value, (*path, key))
        else:
            result[key] = value
    for key, value in patch.items():
        directive, _, field = key.partition("/")
        if directive == "$deleteFromPrimitiveList" and isinstance(result.get(field), list):
            result[field] = [item for item in result[field] if item not in (value or [])]
        elif directive == "$setElementOrder" and isinstance(result.get(field), list):
            result[field] = _in_order(result[field], value or [], merge_key((*path, field)))
    retained = patch.get("$retainKeys")
    if isinstance(retained, list):
        result = {k: v for k, v in result.items() if k in retained}
    return result


def _merge_list(original: list, patch: list, path: tuple[str, ...]) -> list:
    key = merge_key(path)
    if key is None:
        if path[-1] in _MERGED_PRIMITIVE_LISTS:
            return original + [item for item in patch if item not in original]
        return [_merge_map({}, item, path) if isinstance(item, dict) else item for item in patch]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_merge_map({}, item, path) if isinstance(item, dict) else item for item in patch
                if not (isinstance(item, dict) and item.get("$patch") == "replace")]
    result = list(original)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"the patch of {'.'.join(path)} has an item without its merge key {key!r}")
        index = next((i for i, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item[key]),
                     None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(_merge_map({}, item, path))
        else:
            result[index] = _merge_map(result[index], item, path)
    return result


def _in_order(items: list, order: list, key: str | None) -> list:
    def identity(item: object) -> object:
        return item.get(key) if key and isinstance(item, dict) else item

    wanted = [identity(entry) for entry in order]
    ranked = sorted((item for item in items if identity(item) in wanted), key=lambda i: wanted.index(identity(i)))
    return ranked + [item for item in items if identity(item) not in wanted]


def json_merge_patch(original: object, patch: object) -> object:
    """Apply an RFC 7386 JSON merge patch: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


def json_patch(original: dict, operations: list) -> dict:
    """Apply an RFC 6902 JSON patch; 422 when an operation does not apply."""
    if not isinstance(operations, list):
        raise bad_request("a JSON patch must be a JSON array of operations")
    try:
        return jsonpatch.JsonPatch(operations).apply(original)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as error:
        raise ApiError(422, "Invalid", f"the JSON patch could not be applied: {error}") from error


def _decode(body: bytes, content_type: str) -> object:
    try:
        if content_type == APPLY:
            return yaml.safe_load(body.decode())
        return json.loads(body)
    except (ValueError, yaml.YAMLError) as error:
        raise bad_request(f"the patch body is not valid {'YAML' if content_type == APPLY else 'JSON'}: {error}")


def patch_object(rtype: ResourceType, current: dict, body: bytes, content_type: str) -> dict:
    """`current` with the patch in `body` applied, by the format `content_type` names.

    Strategic merge is refused (415) for custom resources, as the real API server does;
    server-side apply is approximated by a strategic (or, for custom resources, JSON)
    merge of the applied configuration, without field ownership."""
    if content_type not in PATCH_TYPES or (content_type == STRATEGIC and rtype.custom):
        accepted = [t for t in PATCH_TYPES if not (t == STRATEGIC and rtype.custom)]
        raise ApiError(415, "UnsupportedMediaType",
                       "the body of the request was in an unknown format - accepted media types include: "
                       + ", ".join(accepted))
    document = _decode(body, content_type)
    if content_type == JSON_PATCH:
        return json_patch(current, document)
    if not isinstance(document, dict):
        raise bad_request("the patch must be a JSON object")
    if content_type == MERGE or (content_type == APPLY and rtype.custom):
        return json_merge_patch(current, document)
    return strategic_merge_patch(current, document)


def decode_applied(body: bytes) -> dict:
    """The configuration in a server-side apply body, for creating an object that is absent."""
    document = _decode(body, APPLY)
    if not isinstance(document, dict):
        raise bad_request("the applied configuration must be an object")
    return document
