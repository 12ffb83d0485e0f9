"""Every error the API answers, mapped in one place to ``{"statusCode", "message", "errorCode"}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lipsync_api.errors import LipsyncError, response_body

log = logging.getLogger(__name__)

INTERNAL_MESSAGE = "internal server error"


def error_response(status: int, message: str | list[str], error_code: str | None = None) -> JSONResponse:
    """A JSON error in the contract's shape."""
    body: dict[str, object] = {"statusCode": status, "message": message}
    if error_code is not None:
        body["errorCode"] = error_code
    return JSONResponse(body, status_code=status)


def describe_validation_error(error: dict[str, Any]) -> str:
    """``field.path: message`` for one pydantic/FastAPI validation error (the body/query prefix dropped)."""
    if error.get("type") == "json_invalid":
        return "body: not valid JSON"
    location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "header", "path")]
    message = str(error.get("msg", "invalid"))
    return f"{'.'.join(location)}: {message}" if location else message


async def _lipsync_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LipsyncError)
    return JSONResponse(response_body(exc), status_code=exc.status_code)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, [describe_validation_error(dict(e)) for e in exc.errors()])


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    response = error_response(exc.status_code, str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, INTERNAL_MESSAGE)


def install_error_handlers(app: FastAPI) -> None:
    """Register the one mapping from exceptions to error bodies."""
    app.add_exception_handler(LipsyncError, _lipsync_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
