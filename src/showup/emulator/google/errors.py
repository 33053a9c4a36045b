"""Google's error body (PROTOCOLS §1.6): ``{"error": {"errors": [...], "code", "message"}}``."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

# Domain per reason, as Google reports it (§1.6 table).
_DOMAINS = {
    "rateLimitExceeded": "usageLimits",
    "userRateLimitExceeded": "usageLimits",
    "quotaExceeded": "usageLimits",
}
_DEFAULT_REASON = {
    400: "badRequest",
    401: "authError",
    403: "rateLimitExceeded",
    404: "notFound",
    410: "deleted",
    429: "rateLimitExceeded",
    500: "backendError",
    503: "backendError",
}
_STATUS_TEXT = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    410: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class GoogleError(Exception):
    """Raised inside handlers; rendered by :func:`error_response`."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        *,
        location: str | None = None,
        location_type: str = "parameter",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _DEFAULT_REASON.get(code, "backendError")
        self.location = location
        self.location_type = location_type


def error_body(
    code: int,
    message: str,
    reason: str | None = None,
    location: str | None = None,
    location_type: str = "parameter",
) -> dict[str, Any]:
    reason = reason or _DEFAULT_REASON.get(code, "backendError")
    item: dict[str, Any] = {
        "domain": _DOMAINS.get(reason, "global"),
        "reason": reason,
        "message": message,
    }
    if location:
        item["locationType"] = location_type
        item["location"] = location
    return {
        "error": {
            "errors": [item],
            "code": code,
            "message": message,
            "status": _STATUS_TEXT.get(code, "UNKNOWN"),
        }
    }


def error_response(exc: GoogleError, headers: dict[str, str] | None = None) -> JSONResponse:
    body = error_body(exc.code, exc.message, exc.reason, exc.location, exc.location_type)
    return JSONResponse(body, status_code=exc.code, headers=headers)
