"""The URL-signing secret: configured, or generated once and kept in the data folder across restarts."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

SECRET_FILE_NAME = "url-signing-secret"


def load_or_create_secret(data_dir: Path) -> str:
    """The secret stored in ``data_dir``, created (mode 0600) on first use; safe against a racing start."""
    path = data_dir / SECRET_FILE_NAME
    data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as out:
            out.write(secrets.token_urlsafe(48))
            out.flush()
            os.fsync(out.fileno())
    secret = path.read_text(encoding="ascii").strip()
    if len(secret) < 32:
        raise RuntimeError(f"{path} holds no usable secret; delete it to make a new one")
    return secret
