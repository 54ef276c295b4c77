"""A local, in-process OpenAI-compatible chat server for tests and demos (no network).

It speaks the subset qprobe uses — ``POST /v1/chat/completions`` and
``GET /v1/models`` — on ``127.0.0.1`` and a free port, answers from a
script of :class:`Reply` objects (then from a fallback function), and keeps
every request it received, so tests can check what a client sent (e.g. the
pixels of an image data URL) and make the server time out, fail or send
garbage::

    with ChatServer([Reply(delay_s=2.0), Reply(status=500), Reply(text="<answer>3</answer>")]) as srv:
        backend = create_backend("openai", model="test", base_url=srv.base_url, timeout_s=0.5)
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np


@dataclass
class Reply:
    """One scripted answer: assistant ``text`` (or ``tool_calls``), an HTTP ``status``,
    a raw ``body`` that replaces the JSON (to send garbage), and a ``delay_s`` before answering."""

    text: str | None = ""
    status: int = 200
    body: bytes | None = None
    delay_s: float = 0.0
    tool_calls: list[dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def completion(text: str | None, tool_calls: list[dict[str, Any]] | None = None, model: str = "test") -> dict[str, Any]:
    """A chat-completions response body."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


class ChatServer:
    """A scripted chat-completions server on 127.0.0.1 (use as a context manager)."""

    def __init__(
        self,
        script: Iterable[Reply] = (),
        fallback: Callable[[dict[str, Any]], Reply] | None = None,
        api_key: str | None = None,
    ) -> None:
        self.script = list(script)
        self.fallback = fallback
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def _next(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self.script:
                return self.script.pop(0)
        if self.fallback is not None:
            return self.fallback(request)
        return Reply(status=500, body=b'{"error": {"message": "script exhausted"}}')

    def start(self) -> ChatServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, json.dumps({"object": "list", "data": [{"id": "test"}]}).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    self._send(401, b'{"error": {"message": "invalid api key"}}')
                    return
                try:
                    request = json.loads(raw)
                except ValueError:
                    self._send(400, b'{"error": {"message": "request is not JSON"}}')
                    return
                reply = server._next(request)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                body = reply.body
                if body is None:
                    body = json.dumps(completion(reply.text, reply.tool_calls, str(request.get("model")))).encode()
                self._send(reply.status, body, reply.headers)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="qprobe-test-chat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def request_images(request: dict[str, Any]) -> list[np.ndarray]:
    """Decode every image data URL of a chat request, in order, as uint8 RGB arrays."""
    from PIL import Image

    out = []
    for msg in request.get("messages", []):
        content = msg.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if part.get("type") == "image_url":
                url = part["image_url"]["url"]
                data = base64.b64decode(url.split(",", 1)[1])
                out.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    return out
