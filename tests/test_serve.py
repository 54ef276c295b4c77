"""`qprobe serve` as a real process on 127.0.0.1: auth, limits, bad inputs, concurrency."""

from __future__ import annotations

import asyncio
import io
import struct
import subprocess
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from _helpers_product import free_port, qprobe_cmd
from conftest import make_texture
from test_io import write_bad_inputs

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

TOKEN = "test-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_UPLOAD_MB = 1.0


def _jpeg(seed: int, h: int = 180, w: int = 240) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(make_texture(h, w, seed=seed)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _bomb_png(side: int = 60000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("serve") / "server.log"
    for _attempt in range(3):
        port = free_port()
        cmd = qprobe_cmd("serve", "--host", "127.0.0.1", "--port", str(port), "--token", TOKEN, "--backend", "dummy",
                         "--workers", "2", "--queue", "64", "--max-upload-mb", str(MAX_UPLOAD_MB), "--no-access-log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        if proc.poll() is None:
            break
    else:
        pytest.fail(f"server did not start: {log_path.read_text()[-2000:]}")
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _post(base: str, data: bytes, name: str = "x.jpg", headers=AUTH, **form):
    return httpx.post(f"{base}/v1/assess", files={"image": (name, data, "application/octet-stream")},
                      data={k: str(v) for k, v in form.items()}, headers=headers, timeout=60)


def _expected_score(data: bytes) -> float:
    from qprobe.backends import create_backend
    from qprobe.io import load_rgb

    return round(create_backend("dummy").assess(load_rgb(data)).score, 4)


def test_health_and_openapi(server):
    h = httpx.get(f"{server}/healthz").json()  # no token needed
    assert h["status"] == "ok" and h["default_backend"] == "dummy" and h["loaded"] == ["dummy"] and h["auth"]
    spec = httpx.get(f"{server}/openapi.json").json()
    assert "/v1/assess" in spec["paths"] and "429" in spec["paths"]["/v1/assess"]["post"]["responses"]
    assert httpx.get(f"{server}/docs").status_code == 200


def test_valid_requests(server):
    data = _jpeg(1)
    r = _post(server, data, name="holiday.jpg")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["score"] == _expected_score(data) and 1.0 <= body["score"] <= 5.0
    assert body["image_size"] == [240, 180] and body["path"] == "upload://holiday.jpg"
    assert "trajectory" not in body and body["backend"] == "dummy"
    r = _post(server, data, include_trajectory="true", max_zooms=1)
    body = r.json()
    assert r.status_code == 200 and len(body["probes"]) <= 1
    assert body["trajectory"]["image_size"] == [240, 180]
    assert _post(server, data, max_zooms=0).json()["probes"] == []
    r = _post(server, data, max_zooms=999)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = _post(server, data, backend="classic")
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_backend"


def test_bad_or_missing_token(server):
    data = _jpeg(2)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}):
        r = _post(server, data, headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"


def test_oversize_upload(server):
    big = b"\xff" * int(MAX_UPLOAD_MB * 1024 * 1024 + 10)
    r = _post(server, big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "upload_too_large"

    head = b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n\r\n'

    def chunks():  # no Content-Length: the limit is enforced while the body streams
        yield head
        for _ in range(8):
            yield b"\xff" * (256 * 1024)
        yield b"\r\n--xyz--\r\n"

    r = httpx.post(f"{server}/v1/assess", content=chunks(), timeout=60,
                   headers={**AUTH, "Content-Type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "upload_too_large"
    r = _post(server, _bomb_png())  # a tiny file whose header claims 3.6 gigapixels
    assert r.status_code == 413 and r.json()["error"]["code"] == "image_too_large"
    assert "above this server's limit" in r.json()["error"]["message"]


def test_non_image_and_every_bad_input(server, tmp_path):
    r = _post(server, b"%PDF-1.4 definitely not an image", name="doc.pdf")
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_image"
    assert "upload://doc.pdf" in r.json()["error"]["message"]
    r = httpx.post(f"{server}/v1/assess", data={"path": "/etc/passwd"}, headers=AUTH, timeout=30)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "image"
    for name, outcome in write_bad_inputs(tmp_path).items():
        r = _post(server, (tmp_path / name).read_bytes(), name=name)
        if outcome == "error":
            assert r.status_code == 422 and r.json()["error"]["code"] == "bad_image", (name, r.text)
        else:
            assert r.status_code == 200 and 1.0 <= r.json()["score"] <= 5.0, (name, r.text)
    rot = _post(server, (tmp_path / "rotated.jpg").read_bytes()).json()
    assert rot["image_size"] == [96, 128]  # EXIF orientation applied


def test_client_paths_are_never_read(server):
    data = _jpeg(3)
    r = _post(server, data, name="/etc/passwd", path="/etc/hostname")
    assert r.status_code == 200
    body = r.json()
    assert body["path"] == "upload://passwd" and body["score"] == _expected_score(data)
    assert body["image_size"] == [240, 180]


def test_fifty_concurrent_requests(server):
    images = [_jpeg(10 + i) for i in range(5)]
    expected = [_expected_score(d) for d in images]
    barrier = threading.Barrier(50)

    def one(i: int):
        barrier.wait(timeout=60)
        with httpx.Client(timeout=120) as client:
            r = client.post(f"{server}/v1/assess", files={"image": (f"{i}.jpg", images[i % 5])}, headers=AUTH)
        return i, r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(50)))
    assert len(results) == 50
    for i, status, body in results:
        assert status == 200, body
        assert body["path"] == f"upload://{i}.jpg" and body["score"] == expected[i % 5]
    h = httpx.get(f"{server}/healthz").json()
    assert h["running"] == 0 and h["waiting"] == 0


def test_limiter_busy_and_timeout_answers():
    from qprobe.serve.errors import ApiError
    from qprobe.serve.limits import Limiter

    limiter = Limiter(workers=1, queue=1)
    release = threading.Event()

    async def scenario():
        slow = [asyncio.ensure_future(limiter.run(lambda: release.wait(10), 30)) for _ in range(2)]
        await asyncio.sleep(0.2)
        assert limiter.stats() == {"running": 1, "waiting": 1, "workers": 1, "capacity": 2}
        with pytest.raises(ApiError) as busy:
            await limiter.run(lambda: 1, 30)
        assert busy.value.status == 429 and busy.value.headers["Retry-After"]
        release.set()
        assert await asyncio.gather(*slow) == [True, True]
        release.clear()
        with pytest.raises(ApiError) as late:
            await limiter.run(lambda: release.wait(10), 0.2)
        assert late.value.status == 503 and late.value.code == "timeout"
        assert limiter.stats()["running"] == 1  # the slot is held until the work really ends
        release.set()
        await asyncio.sleep(0.2)
        assert limiter.stats()["running"] == 0 and await limiter.run(lambda: 7, 5) == 7

    asyncio.run(scenario())
    limiter.shutdown()


def test_backend_created_once_per_process():
    from qprobe.serve.backends import BackendPool

    pool = BackendPool(["dummy"])
    a, _ = pool.get("dummy")
    b, _ = pool.get("dummy")
    assert a is b and pool.loaded() == ["dummy"]


def test_app_answers_429_when_full_and_503_on_timeout(monkeypatch):
    """The whole app stack in-process, with a backend that blocks until released."""
    import qprobe.backends
    from qprobe.serve import ServeConfig, create_app
    from qprobe.types import Assessment

    release = threading.Event()

    class Blocking:
        name = "dummy"

        def assess(self, image, **kw):
            release.wait(10)
            return Assessment(score=3.0, backend="dummy")

    monkeypatch.setattr(qprobe.backends, "create_backend", lambda name, **kw: Blocking())
    app = create_app(ServeConfig(backend="dummy", workers=1, queue=1, timeout_s=0.5))
    data = _jpeg(4, 32, 32)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            async def post():
                return await client.post("/v1/assess", files={"image": ("a.jpg", data)})

            first = [asyncio.ensure_future(post()) for _ in range(2)]
            await asyncio.sleep(0.2)
            busy = await post()
            assert busy.status_code == 429 and busy.headers["retry-after"]
            assert busy.json()["error"]["code"] == "busy"
            late = await asyncio.gather(*first)
            assert [r.status_code for r in late] == [503, 503]
            assert {r.json()["error"]["code"] for r in late} == {"timeout"}
            release.set()
            await asyncio.sleep(0.3)
            ok = await post()
            assert ok.status_code == 200 and ok.json()["score"] == 3.0

    asyncio.run(scenario())


def test_cli_refuses_unknown_backend_before_listening():
    res = subprocess.run(qprobe_cmd("serve", "--backend", "dumy", "--port", str(free_port())),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "did you mean 'dummy'" in res.stderr
