"""Executors run the engine off the event loop; the ``Engine`` protocol is what they run.

An engine is a plain synchronous callable (it does CPU and file work); an executor (local thread pool,
later Ray) runs it elsewhere and hands the result back to the scheduler's event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lipsync_api.api.engine_request import AssetPath, to_engine_request
from lipsync_api.api.generation_request import parse_generation
from lipsync_api.domain.models_catalog import BUILTIN_ENGINE_NAME
from lipsync_api.engine.analysis import AnalysisCache
from lipsync_api.engine.pipeline import render
from lipsync_api.engine.request import EngineConfig
from lipsync_api.errors import ErrorCode, GenerationError


@dataclass(frozen=True)
class EngineResult:
    """What one engine run produced: the output file (in the work folder), its duration, seconds per stage."""

    output_path: Path
    duration: float
    engine_name: str
    stage_seconds: dict[str, float] = field(default_factory=dict)


class Engine(Protocol):
    """Makes one generation's output; raises GenerationError on failure. Called from a worker thread."""

    def run(self, generation_id: str, request_json: dict[str, Any], work_dir: Path) -> EngineResult:
        """Render the stored request into ``work_dir``."""
        ...


class Executor(Protocol):
    """Runs engine calls somewhere other than the event loop, with a bounded number of workers."""

    @property
    def workers(self) -> int:
        """How many engine calls may run at once."""
        ...

    async def submit(self, generation_id: str, request_json: dict[str, Any], work_dir: Path) -> EngineResult:
        """Run the engine on one request and return its result (or raise what it raised)."""
        ...

    def shutdown(self) -> None:
        """Stop accepting work and release the workers."""
        ...


class RealEngine:
    """The built-in engine: the stored request JSON -> engine request -> ``pipeline.render``."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        name: str = BUILTIN_ENGINE_NAME,
        allow_local_files: bool = False,
        asset_path: AssetPath | None = None,
    ) -> None:
        """``asset_path`` finds uploaded assets' files (without it an ``assetId`` input cannot run)."""
        self._config = config
        self._name = name
        self._allow_local_files = allow_local_files
        self._asset_path = asset_path
        self._cache = _cache_for(config)

    def run(self, generation_id: str, request_json: dict[str, Any], work_dir: Path) -> EngineResult:
        """Validate the stored request again (it was accepted once) and render it."""
        model, problems = parse_generation(request_json, allow_local_files=self._allow_local_files)
        if model is None:
            described = "; ".join(problem.describe() for problem in problems)
            raise GenerationError(ErrorCode.PIPELINE_FAILED, f"stored request is invalid: {described}")
        request = to_engine_request(
            model, allow_local_files=self._allow_local_files, asset_path=self._asset_path
        )
        result = render(request, work_dir, self._config, cache=self._cache)
        return EngineResult(result.output_path, result.duration, self._name, dict(result.stage_seconds))


def _cache_for(config: EngineConfig) -> AnalysisCache | None:
    if config.cache_dir is None or config.cache_max_bytes <= 0:
        return None
    return AnalysisCache(config.cache_dir, config.cache_max_bytes)


__all__ = ["BUILTIN_ENGINE_NAME", "Engine", "EngineResult", "Executor", "RealEngine"]
