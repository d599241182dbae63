"""The lifecycle the sandbox's controllers share: one asyncio task reading the store's change feed."""

from __future__ import annotations

import asyncio

from delivery.sandbox.store import ObjectStore, StoreEvent, StoreWatch


class StoreReconciler:
    """Runs `_run` over a watch of the whole store as one task named `task_name`, from start() to stop()."""

    task_name = "sandbox-reconciler"

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._task: asyncio.Task | None = None
        self._watch: StoreWatch | None = None

    async def start(self) -> None:
        """Subscribe to the store and start reconciling (in the running event loop)."""
        if self._task is None:
            self._watch = self.store.watch()
            self._task = asyncio.create_task(self._run(self._watch.queue), name=self.task_name)

    async def stop(self) -> None:
        """Stop reconciling; safe to call twice."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    async def _run(self, queue: asyncio.Queue[StoreEvent | None]) -> None:
        raise NotImplementedError
