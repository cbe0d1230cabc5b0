"""Failures of the next stage, answered with the HTTP status that says whose they are.

KServe answers an ``InferenceError`` with 500 and an ``InvalidInput`` with 400. A stage whose
next stage (a transformer's predictor) failed is a gateway, not the failing server: it answers
502 when the next stage failed or could not be reached, 504 when it did not answer in time, and
the next stage's own 4xx when that stage refused the request. The errors below subclass
KServe's, so where :func:`add_upstream_handlers` has not been applied (a server started some
other way) they still reach the caller, as a 500 and a 400.
"""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from kserve.errors import InferenceError, InvalidInput
from kserve.logging import logger


class UpstreamError(InferenceError):  # type: ignore[misc]
    """The next stage failed (a 5xx), answered what cannot be used, or could not be reached:
    502 Bad Gateway."""

    status_code = HTTPStatus.BAD_GATEWAY


class UpstreamTimeoutError(UpstreamError):
    """The next stage did not answer within the time allowed: 504 Gateway Timeout."""

    status_code = HTTPStatus.GATEWAY_TIMEOUT


class UpstreamInvalidInput(InvalidInput):  # type: ignore[misc]
    """The next stage refused the request with a 4xx, which the caller gets as it was. The
    failure is counted by the next stage's metrics, not this one's."""

    def __init__(self, reason: str, status_code: int = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(reason)
        self.status_code = status_code


async def upstream_error_handler(
    _: Request, exc: UpstreamError | UpstreamInvalidInput
) -> JSONResponse:
    """The error's own status, with KServe's error body ``{"error": "..."}``."""
    logger.warning("%s (answered %d)", exc, exc.status_code)
    return JSONResponse(status_code=int(exc.status_code), content={"error": str(exc)})


def add_upstream_handlers(app: FastAPI) -> None:
    """Answer the errors above with their own statuses. A handler is looked up along the
    exception's class hierarchy, so these come before KServe's handlers of the base classes."""
    app.add_exception_handler(UpstreamError, upstream_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(UpstreamInvalidInput, upstream_error_handler)  # type: ignore[arg-type]
