"""A small client of the v2 API for the command line: requests, errors, batch watching, downloads."""

from __future__ import annotations

from lipsync_api.client.http import ApiClient, ApiError, ServerUnreachable

__all__ = ["ApiClient", "ApiError", "ServerUnreachable"]
