"""Which engine serves which model name: the catalogue behind ``/v2/models`` and model validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lipsync_api import __version__

BUILTIN_ENGINE_NAME = "lipsync-api"
SYNC_MODEL_NAMES = ("lipsync-2", "lipsync-2-pro", "lipsync-1.9.0-beta", "sync-3")


def default_model_engines() -> dict[str, str]:
    """Every sync model name and the engine's own name, each served by the built-in engine."""
    return {name: BUILTIN_ENGINE_NAME for name in (*SYNC_MODEL_NAMES, BUILTIN_ENGINE_NAME)}


@dataclass(frozen=True)
class ModelCatalog:
    """Served model names, each mapped to the name of the engine that renders it."""

    engines: Mapping[str, str]

    def __post_init__(self) -> None:
        if not self.engines:
            raise ValueError("at least one model must be served")

    def serves(self, model: str) -> bool:
        """Whether ``model`` is a served model name."""
        return model in self.engines

    def engine_for(self, model: str) -> str:
        """The engine that renders ``model``; KeyError for a model not served."""
        return self.engines[model]

    def unsupported(self, model: str) -> str:
        """The message for a model name that is not served."""
        served = ", ".join(sorted(self.engines))
        shown = model if len(model) <= 64 else model[:61] + "..."
        return f"model {shown!r} is not served here; served models: {served}"

    def described(self) -> list[dict[str, str]]:
        """``/v2/models`` entries (``id``, ``name``, ``type``, ``version``, ``description``)."""
        return [
            {
                "id": name,
                "name": name,
                "type": "lipsync",
                "version": __version__,
                "description": f"served by the {engine} engine",
            }
            for name, engine in self.engines.items()
        ]
