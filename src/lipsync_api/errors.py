"""One exception tree for the whole service; each class knows its HTTP status and error code."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Error codes a failed or rejected generation carries (sync's list plus ours, same style)."""

    UNSUPPORTED_MODEL = "generation_unsupported_model"
    MEDIA_METADATA_MISSING = "generation_media_metadata_missing"
    AUDIO_LENGTH_EXCEEDED = "generation_audio_length_exceeded"
    AUDIO_MISSING = "generation_audio_missing"
    VIDEO_MISSING = "generation_video_missing"
    TIMEOUT = "generation_timeout"
    PIPELINE_FAILED = "generation_pipeline_failed"
    UNHANDLED_ERROR = "generation_unhandled_error"
    # ours
    MEDIA_FETCH_FAILED = "generation_media_fetch_failed"
    MEDIA_UNSUPPORTED = "generation_media_unsupported"
    MEDIA_TOO_LARGE = "generation_media_too_large"
    VIDEO_LENGTH_EXCEEDED = "generation_video_length_exceeded"
    NO_FACE_DETECTED = "generation_no_face_detected"
    INVALID_SEGMENTS = "generation_invalid_segments"
    CANCELED = "generation_canceled"


class LipsyncError(Exception):
    """Base of every error the service raises on purpose."""

    status_code: int = 500
    error_code: str | None = None

    def __init__(self, message: str, *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if error_code is not None:
            self.error_code = error_code


class InvalidRequestError(LipsyncError):
    """The request itself is malformed (HTTP 400)."""

    status_code = 400


class GenerationError(LipsyncError):
    """A generation could not be produced.

    ``rejected`` marks input that is invalid in a way found only after acceptance (status REJECTED);
    ``transient`` marks failures worth retrying (timeouts, 5xx from a media host).
    """

    status_code = 422

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        rejected: bool = False,
        transient: bool = False,
    ) -> None:
        super().__init__(message, error_code=code.value)
        self.code = code
        self.rejected = rejected
        self.transient = transient


def media_unsupported(message: str) -> GenerationError:
    """An input that is not decodable media (REJECTED)."""
    return GenerationError(ErrorCode.MEDIA_UNSUPPORTED, message, rejected=True)


def video_missing(message: str) -> GenerationError:
    """An input that should carry a video stream and does not (REJECTED)."""
    return GenerationError(ErrorCode.VIDEO_MISSING, message, rejected=True)


def audio_missing(message: str) -> GenerationError:
    """An input that should carry an audio stream and does not (REJECTED)."""
    return GenerationError(ErrorCode.AUDIO_MISSING, message, rejected=True)


# --- errors of the use cases (domain/services.py) ------------------------------------------------------


class InvalidGenerationRequest(InvalidRequestError):
    """A generate body that failed validation; ``messages`` lists every problem as ``field: message``."""

    def __init__(self, messages: list[str], *, error_code: str | None = None) -> None:
        super().__init__("; ".join(messages), error_code=error_code)
        self.messages = messages


class InvalidIdempotencyKey(InvalidRequestError):
    """An empty or malformed ``Idempotency-Key`` header (HTTP 400)."""

    error_code = "INVALID_IDEMPOTENCY_KEY"


class Unauthorized(LipsyncError):
    """A missing, unknown or revoked ``x-api-key`` (HTTP 401)."""

    status_code = 401
    error_code = "unauthorized"


class SignedUrlRejected(LipsyncError):
    """A signed download URL that is tampered with or expired (HTTP 403)."""

    status_code = 403
    error_code = "invalid_signature"


class NotFoundError(LipsyncError):
    """No such resource for the caller; another organization's looks absent (HTTP 404)."""

    status_code = 404


class PlanUpgradeRequired(LipsyncError):
    """The organization's plan does not include this feature (HTTP 402)."""

    status_code = 402
    error_code = "plan_upgrade_required"


class IdempotencyKeyReused(LipsyncError):
    """The ``Idempotency-Key`` was first used with a different body (HTTP 409)."""

    status_code = 409
    error_code = "IDEMPOTENCY_KEY_REUSED"


class ConcurrencyLimitReached(LipsyncError):
    """The plan's cap on running generations or batches is reached (HTTP 429)."""

    status_code = 429
    error_code = "concurrency_limit_reached"


class BatchFileInvalid(InvalidRequestError):
    """A batch file with problems; ``body`` is the whole 400 body, every problem with its line."""

    error_code = "invalid_batch_file"

    def __init__(self, body: dict[str, object]) -> None:
        messages = body.get("message")
        count = len(messages) if isinstance(messages, list) else 1
        super().__init__(f"the batch file has {count} problem(s)")
        self.body = body


class BatchFileTooLarge(LipsyncError):
    """A batch file over the size limit; ``body`` is the whole 413 body (same shape as a 400)."""

    status_code = 413
    error_code = "batch_file_too_large"

    def __init__(self, body: dict[str, object]) -> None:
        super().__init__("the batch file is larger than the limit")
        self.body = body


def response_body(error: LipsyncError) -> dict[str, object]:
    """The JSON body API.md gives an error: statusCode, message (a string or a list), errorCode."""
    if isinstance(error, BatchFileInvalid | BatchFileTooLarge):
        return error.body
    message: str | list[str] = (
        error.messages if isinstance(error, InvalidGenerationRequest) else error.message
    )
    body: dict[str, object] = {"statusCode": error.status_code, "message": message}
    if error.error_code is not None:
        body["errorCode"] = error.error_code
    return body
