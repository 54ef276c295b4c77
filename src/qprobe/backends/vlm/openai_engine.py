"""An OpenAI-compatible chat endpoint (vLLM, SGLang, hosted) as a :class:`~.engine.ChatEngine`.

One ``POST {base_url}/chat/completions`` per turn, images inline as data
URLs (PNG by default, so the server sees exactly the pixels qprobe cut).
Timeouts, connection errors, HTTP 408/409/429/5xx and malformed response
bodies are retried with exponential back-off (honouring ``Retry-After``);
other HTTP errors fail at once with the server's message. Concurrency is
bounded by the number of episode threads (``--batch-size``).

A reply given as native ``tool_calls`` (servers run with a tool parser) is
turned back into the ``<tool_call>`` text the parser reads, and a separate
``reasoning_content`` into ``<think>``.
"""

from __future__ import annotations

import base64
import io
import json
import random
import time
from collections.abc import Sequence
from typing import Any

from PIL import Image

from qprobe.agent.prompts import ZOOM_TOOL
from qprobe.backends.vlm.engine import EngineError, Generation
from qprobe.backends.vlm.messages import Conversation

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


def data_url(image: Image.Image, fmt: str = "png", quality: int = 92) -> str:
    """An image as a ``data:`` URL (PNG lossless, or JPEG with ``quality``)."""
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, format="PNG", compress_level=1)
        mime = "image/png"
    elif fmt in ("jpeg", "jpg"):
        image.convert("RGB").save(buf, format="JPEG", quality=quality)
        mime = "image/jpeg"
    else:
        raise ValueError(f"image format must be png or jpeg, got {fmt!r}")
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def to_openai_messages(conv: Conversation, fmt: str = "png", quality: int = 92) -> list[dict[str, Any]]:
    """Structured chat messages → OpenAI ``messages`` (images as ``image_url`` parts)."""
    images = iter(conv.images)
    out: list[dict[str, Any]] = []
    for msg in conv.messages:
        parts = msg["content"]
        if isinstance(parts, str):
            out.append({"role": msg["role"], "content": parts})
            continue
        if msg["role"] in ("system", "assistant"):
            out.append({"role": msg["role"], "content": "".join(p.get("text", "") for p in parts)})
            continue
        content = []
        for p in parts:
            if p.get("type") == "image":
                content.append({"type": "image_url", "image_url": {"url": data_url(next(images), fmt, quality)}})
            else:
                content.append({"type": "text", "text": p.get("text", "")})
        out.append({"role": msg["role"], "content": content})
    return out


def reply_text(body: Any) -> str:
    """The assistant text of a chat-completions response; raises ``ValueError`` if malformed."""
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list) or not body["choices"]:
        raise ValueError("no 'choices' in the response")
    message = body["choices"][0].get("message") if isinstance(body["choices"][0], dict) else None
    if not isinstance(message, dict):
        raise ValueError("no 'message' in the first choice")
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    text = "" if content is None else str(content)
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning.strip() and "<think>" not in text:
        text = f"<think>{reasoning.strip()}</think>\n{text}"
    for call in message.get("tool_calls") or []:
        fn = call.get("function", {}) if isinstance(call, dict) else {}
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                pass  # kept as a string: the parser reports it to the model
        text += "\n<tool_call>\n" + json.dumps({"name": fn.get("name"), "arguments": args}) + "\n</tool_call>"
    return text


class OpenAIEngine:
    """Chat completions over HTTP with retries and back-off."""

    batched = False

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = 0,
        image_format: str = "png",
        jpeg_quality: int = 92,
        native_tools: bool = False,
    ) -> None:
        import httpx

        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.image_format = image_format
        self.jpeg_quality = jpeg_quality
        self.native_tools = native_tools
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._httpx = httpx
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s))
        self._rng = random.Random(0)
        self.retries = 0

    def decoding(self) -> dict[str, Any]:
        return {
            "engine": "openai",
            "url": self.url,
            "model": self.model,
            "greedy": self.temperature <= 0,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_new_tokens": self.max_new_tokens,
            "seed": self.seed,
            "image_format": self.image_format,
        }

    def payload(self, conv: Conversation) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(conv, self.image_format, self.jpeg_quality),
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        if self.native_tools:
            body["tools"] = [ZOOM_TOOL]
        return body

    def generate(self, conversations: Sequence[Conversation]) -> list[Generation]:
        return [self._one(c) for c in conversations]

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        delay = min(self.max_backoff_s, self.backoff_s * (2**attempt))
        delay += self._rng.uniform(0, 0.1 * delay)
        if retry_after:
            try:
                delay = max(delay, min(self.max_backoff_s, float(retry_after)))
            except ValueError:
                pass
        return delay

    def _one(self, conv: Conversation) -> Generation:
        body = self.payload(conv)
        problem = ""
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                resp = self._client.post(self.url, json=body)
            except self._httpx.TimeoutException:
                problem = f"no reply within {self.timeout_s:g} s"
            except self._httpx.TransportError as exc:
                problem = f"cannot reach the server ({type(exc).__name__}: {exc})"
            else:
                if resp.status_code == 200:
                    try:
                        data = resp.json()
                        text = reply_text(data)
                    except ValueError as exc:
                        problem = f"malformed response ({exc}): {resp.text[:200]!r}"
                    else:
                        usage = data.get("usage") or {}
                        return Generation(
                            text=text,
                            n_prompt_tokens=usage.get("prompt_tokens"),
                            n_new_tokens=usage.get("completion_tokens"),
                            meta={"attempts": attempt + 1},
                        )
                elif resp.status_code in RETRY_STATUS:
                    problem = f"HTTP {resp.status_code}: {resp.text[:200]}"
                    retry_after = resp.headers.get("retry-after")
                else:
                    raise EngineError(
                        f"{self.url} answered HTTP {resp.status_code}: {resp.text[:500]} "
                        "(check --base-url, --model and the API key)"
                    )
            if attempt < self.max_retries:
                self.retries += 1
                time.sleep(self._delay(attempt, retry_after))
        raise EngineError(f"{self.url}: giving up after {self.max_retries + 1} attempts; last problem: {problem}")

    def close(self) -> None:
        self._client.close()
