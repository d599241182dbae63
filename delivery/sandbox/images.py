"""Sandbox images: stable OCI manifests and their digests, derived from `repository:tag`."""

from __future__ import annotations

import hashlib
import json

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def image_manifest(repository: str, tag: str) -> bytes:
    """A stable OCI image manifest for `repository:tag` (its config and layer digests derive from the name)."""
    seed = f"{repository}:{tag}".encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + hashlib.sha256(b"config:" + seed).hexdigest(),
            "size": 1469,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": "sha256:" + hashlib.sha256(b"layer:" + seed).hexdigest(),
                "size": 73_400_320,
            }
        ],
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def manifest_digest(repository: str, tag: str) -> str:
    """The digest of `image_manifest(repository, tag)`, as a registry reports it."""
    return "sha256:" + hashlib.sha256(image_manifest(repository, tag)).hexdigest()
