"""Fixtures shared by the unit tests."""

import http.server
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import matplotlib
import pytest

from bs_lib.config import OFFLINE_ENV, real_pairs_dir

matplotlib.use("Agg")  # figures in unit tests are drawn, never shown


@pytest.fixture(scope="session")
def real_pairs() -> Path:
    """The real sample pairs (``shared/data/real-pairs``); the test is skipped when absent."""
    folder = real_pairs_dir()
    if folder is None:
        pytest.skip("the real sample pairs (shared/data/real-pairs or $BS_REAL_PAIRS) are not present")
    return folder


# --------------------------------------------------------------------------- a loopback server


class LoopbackServer:
    """Serves ``self.files`` (path -> bytes) on 127.0.0.1; ``cut_after`` bytes makes the next response stop early."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut_after: int | None = None
        self.requests: list[dict] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data = server.files.get(self.path)
                server.requests.append({"path": self.path, "range": self.headers.get("Range")})
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None:
                    body, server.cut_after = body[: server.cut_after], None
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"


@pytest.fixture
def loopback_only(monkeypatch):
    """Downloads switched on for one test (``BS_OFFLINE`` unset), but to 127.0.0.1 and file:// URLs only."""
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    urlopen = urllib.request.urlopen

    def guarded(request, *args, **kwargs):
        url = request.full_url if isinstance(request, urllib.request.Request) else str(request)
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "file" and parts.hostname != "127.0.0.1":
            raise AssertionError(f"a test tried to reach {url}; tests may only use the loopback server")
        return urlopen(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)


@pytest.fixture
def server(loopback_only):
    """A :class:`LoopbackServer`, running for one test, with downloads allowed to reach it."""
    loopback = LoopbackServer()
    loopback.thread.start()
    yield loopback
    loopback.httpd.shutdown()
    loopback.httpd.server_close()
    loopback.thread.join(timeout=5)
