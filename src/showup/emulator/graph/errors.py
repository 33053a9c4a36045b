"""Graph's error bodies (PROTOCOLS §2.2, §2.5): ``{"error": {"code", "message",
"innerError": {"date", "request-id", "client-request-id"}}}``, and the Microsoft
identity platform's OAuth error body (§2.1 "Errors")."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse

# Codes for statuses that faults inject without a reason (§2.5).
DEFAULT_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "ErrorAccessDenied",
    404: "ErrorItemNotFound",
    410: "SyncStateNotFound",
    429: "ApplicationThrottled",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceNotAvailable",
    504: "GatewayTimeout",
}
DEFAULT_MESSAGES = {
    429: "Application is over its MailboxConcurrency limit.",
    500: "An internal server error occurred. The operation failed.",
    503: "The service is temporarily unavailable. Please retry later.",
}


class GraphError(Exception):
    """Raised inside Graph handlers; rendered by :func:`error_response`."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_body(status: int, code: str | None, message: str | None, now: datetime) -> dict[str, Any]:
    request_id = str(uuid.uuid4())
    return {
        "error": {
            "code": code or DEFAULT_CODES.get(status, "UnknownError"),
            "message": message or DEFAULT_MESSAGES.get(status, "The request failed."),
            "innerError": {
                "date": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": request_id,
            },
        }
    }


def error_response(exc: GraphError, now: datetime) -> JSONResponse:
    return JSONResponse(
        error_body(exc.status, exc.code, exc.message, now),
        status_code=exc.status,
        headers=exc.headers,
    )


# AADSTS numbers per OAuth error, as the v2.0 endpoint reports them (§2.1 "Errors").
AADSTS = {
    "invalid_grant": 70000,
    "invalid_client": 7000215,
    "invalid_request": 900144,
    "unsupported_grant_type": 70003,
    "consent_required": 65001,
    "temporarily_unavailable": 50196,
    "server_error": 50000,
}


def oauth_body(
    error: str, description: str, now: datetime, code: int | None = None
) -> dict[str, Any]:
    """``{error, error_description: "AADSTS…", error_codes, timestamp, trace_id,
    correlation_id, error_uri}``."""
    number = code if code is not None else AADSTS.get(error, 90000)
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return {
        "error": error,
        "error_description": (
            f"AADSTS{number}: {description} Trace ID: {trace} Correlation ID: {correlation} "
            f"Timestamp: {stamp}"
        ),
        "error_codes": [number],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={number}",
    }


def oauth_error(
    status: int, error: str, description: str, now: datetime, code: int | None = None
) -> JSONResponse:
    return JSONResponse(oauth_body(error, description, now, code), status_code=status)
