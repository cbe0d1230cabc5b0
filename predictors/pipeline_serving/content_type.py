"""v2 inference bodies without the binary tensor header are JSON, whatever their Content-Type.

KServe's v2 ``infer`` route takes a body as JSON only when its Content-Type says JSON; any
other body, one without a Content-Type included, is decoded as a binary-extension body, and
without an ``Inference-Header-Content-Length`` header that is a 400. Triton's HTTP client
sends JSON requests with no Content-Type. In the open inference protocol, a body is binary
exactly when it carries that header, so :class:`JsonUnlessBinary` says the rest are JSON
before KServe's route reads them.
"""

from __future__ import annotations

from email.message import Message

from starlette.types import ASGIApp, Receive, Scope, Send

BINARY_HEADER = b"inference-header-content-length"
CONTENT_TYPE = b"content-type"
JSON = b"application/json"


def is_v2_infer(path: str) -> bool:
    """``/v2/models/NAME/infer`` or ``/v2/models/NAME/versions/VERSION/infer``."""
    return path.startswith("/v2/models/") and path.endswith("/infer")


def is_json(content_type: bytes) -> bool:
    """``application/json`` or ``application/*+json``, parameters aside."""
    message = Message()
    message["content-type"] = content_type.decode("latin-1")
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class JsonUnlessBinary:
    """ASGI middleware: a v2 ``infer`` POST without ``Inference-Header-Content-Length`` gets
    ``Content-Type: application/json`` unless it already names a JSON type (CloudEvents' own
    included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and is_v2_infer(scope["path"]):
            headers: list[tuple[bytes, bytes]] = list(scope["headers"])
            names = {name for name, _ in headers}
            content_type = next((v for k, v in headers if k == CONTENT_TYPE), None)
            if BINARY_HEADER not in names and (content_type is None or not is_json(content_type)):
                headers = [(k, v) for k, v in headers if k != CONTENT_TYPE]
                scope = {**scope, "headers": [*headers, (CONTENT_TYPE, JSON)]}
        await self.app(scope, receive, send)
