"""Bearer-token authentication, checked before the request body is read."""

from __future__ import annotations

import hmac
import json
from typing import Any, Awaitable, Callable

from qprobe.serve.errors import error_body

PROTECTED_PREFIX = "/v1/"


def token_matches(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class BearerAuth:
    """ASGI middleware: 401 for ``/v1/*`` without ``Authorization: Bearer <token>``.

    Running as middleware (not a route dependency) means an unauthenticated
    client cannot make the server receive and parse an upload first.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith(PROTECTED_PREFIX):
            header = ""
            for name, value in scope.get("headers", []):
                if name == b"authorization":
                    header = value.decode("latin-1")
            if not token_matches(header, self.token):
                body = json.dumps(error_body(
                    401, "unauthorized", "missing or wrong bearer token (send 'Authorization: Bearer <token>')"
                )).encode()
                await send({
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b"Bearer"), (b"connection", b"close")],
                })
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
