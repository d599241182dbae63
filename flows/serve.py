"""Serve the release and rollback flows from this process as `release/<name>` and `rollback/<name>`."""

from __future__ import annotations

import sys

from prefect import serve

from flows.recover import recover
from flows.release import release
from flows.rollback import rollback


def main(name: str) -> None:
    """Register `release/<name>`, `rollback/<name>` and `recover/<name>` and run their flow runs here until stopped."""
    serve(
        release.to_deployment(name=name, tags=["tripgen", name], description="Release a tag to production."),
        rollback.to_deployment(name=name, tags=["tripgen", name], description="Roll production back to a version that ran there."),
        recover.to_deployment(name=name, tags=["tripgen", name], description="Restore production after a release run crashed."),
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sandbox")
