"""Serve the release flow from this process as deployment `release/<name>`: `python -m flows.serve sandbox`."""

from __future__ import annotations

import sys

from prefect import serve

from flows.release import release


def main(name: str) -> None:
    """Register `release/<name>` and run its flow runs here until stopped."""
    serve(release.to_deployment(name=name, tags=["tripgen", name], description="Release a tag to production (sandbox)."))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sandbox")
