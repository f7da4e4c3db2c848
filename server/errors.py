"""The body of every error the REST API answers, ``{"error": {"code", "message"}}``, and how the
OpenAPI schema declares it."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str  # stable and machine-readable: the README lists them
    message: str  # for a person


class ErrorBody(BaseModel):
    """``{"error": {"code", "message"}}``."""

    error: ErrorDetail


# OpenAPI responses: any route may refuse with a 4xx (a bad origin, a missing key, bad input);
# the routes that start a session may also be busy
REFUSED = {"4XX": {"model": ErrorBody, "description": "Refused: the error's code says why"}}
BUSY = {503: {"model": ErrorBody, "description": "busy: the server is at its limit of sessions"}}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
