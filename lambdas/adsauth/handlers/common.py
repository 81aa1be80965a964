"""What both API functions share: page responses, redirects and the last-resort error handler."""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from adsauth.pages import SECURITY_HEADERS, render
from adsauth.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import Response
    from aws_lambda_powertools.shared.cookies import Cookie

logger = Logger(service="adsauth")


# The event handler is imported where a response is made: the dispatcher and the worker use this
# module for its logger and never load it (it brings every resolver, and asyncio, along).
def page(key: str, *, cookies: list[Cookie] | None = None) -> Response:
    from aws_lambda_powertools.event_handler import Response

    status, body = render(key, get_settings().branding)
    return Response(
        status_code=status,
        content_type="text/html; charset=utf-8",
        body=body,
        headers=dict(SECURITY_HEADERS),
        cookies=cookies,
    )


def redirect(status: int, location: str, *, cookies: list[Cookie] | None = None) -> Response:
    from aws_lambda_powertools.event_handler import Response

    return Response(
        status_code=status,
        content_type="text/plain; charset=utf-8",
        body="",
        headers={**SECURITY_HEADERS, "Location": location},
        cookies=cookies,
    )


def log_unexpected(exc: BaseException) -> None:
    """Log where an unexpected error happened, never its message: AWS and HTTP error messages
    can echo request values."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = [f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}:{f.name}" for f in frames[-6:]]
    logger.error("unexpected error", extra={"error_type": type(exc).__name__, "frames": where})


def header(headers: dict | None, name: str) -> str | None:
    """Case-insensitive header lookup on an API Gateway event."""
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None
