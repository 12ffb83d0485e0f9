"""The in-process executor: engine calls on a bounded thread pool, awaited from the event loop."""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from lipsync_api.executors import Engine, EngineResult


class LocalExecutor:
    """Runs ``engine.run`` on at most ``workers`` threads at once."""

    def __init__(self, engine: Engine, workers: int) -> None:
        if workers < 1:
            raise ValueError("an executor needs at least one worker")
        self._engine = engine
        self._workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lipsync-engine")

    @property
    def workers(self) -> int:
        """How many engine calls may run at once."""
        return self._workers

    async def submit(self, generation_id: str, request_json: dict[str, Any], work_dir: Path) -> EngineResult:
        """Run the engine in the pool; the result (or its exception) comes back to the caller's loop."""
        loop = asyncio.get_running_loop()
        # In the caller's context, so the engine's log lines name the generation too.
        call = partial(
            contextvars.copy_context().run, self._engine.run, generation_id, request_json, work_dir
        )
        return await loop.run_in_executor(self._pool, call)

    def shutdown(self) -> None:
        """Let running calls finish, start no more."""
        self._pool.shutdown(wait=True, cancel_futures=True)
