"""Fixtures shared by the unit tests."""

import http.server
import importlib.util
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import matplotlib
import pytest
import torch

from bs_lib.config import OFFLINE_ENV, real_pairs_dir

matplotlib.use("Agg")  # figures in unit tests are drawn, never shown


def _start_order(item: pytest.Item) -> int:
    """The longest files first: the student run of every notebook, then the notebooks, then slow tests.

    pytest-xdist hands whole files to its workers in collection order
    (``--dist loadfile --no-loadscope-reorder`` in ``course.py``); started
    early, the long files leave the short ones to fill in around them. The
    sort is stable, so the cells of a notebook keep their order.
    """
    path = item.path.as_posix()
    if path.endswith("tests/test_offclone.py"):
        return 0
    if path.endswith(".ipynb"):
        return 1
    return 2 if item.get_closest_marker("slow") else 3


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_start_order)


def _import_benchmark_script(name: str):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def benchmark_script():
    """``benchmark_script(name)``: ``benchmarks/<name>.py`` imported as a module (the scripts are not a package)."""
    return _import_benchmark_script


@pytest.fixture(scope="session")
def real_pairs() -> Path:
    """The real sample pairs (``shared/data/real-pairs``); the test is skipped when absent."""
    folder = real_pairs_dir()
    if folder is None:
        pytest.skip("the real sample pairs (shared/data/real-pairs or $BS_REAL_PAIRS) are not present")
    return folder


# --------------------------------------------------------------------------- a tiny chest with ribs


class StripedChests(torch.utils.data.Dataset):
    """Smooth "soft tissue" plus bright horizontal "ribs": the bone is what a model must learn to remove.

    Each sample also carries an unpaired, noisy radiograph (``target_cxr``), a
    target domain for domain adaptation; other methods ignore it.
    """

    def __init__(self, num_images: int = 16, size: int = 32, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        coarse = torch.rand(num_images, 1, 4, 4, generator=generator)
        self.soft = 0.2 + 0.5 * torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")
        rows = torch.arange(size).float().view(1, 1, size, 1)
        phase = torch.rand(num_images, 1, 1, 1, generator=generator) * 6
        ribs = 0.25 * (torch.sin(rows / 1.5 + phase) > 0.6).float()
        self.cxr = (self.soft + ribs).clamp(0, 1)
        self.target = (self.cxr.flip(0) + 0.05 * torch.randn(self.cxr.shape, generator=generator)).clamp(0, 1)

    def __len__(self) -> int:
        return len(self.cxr)

    def __getitem__(self, index: int) -> dict:
        return {"cxr": self.cxr[index], "soft": self.soft[index], "target_cxr": self.target[index], "id": str(index)}


@pytest.fixture
def striped_chests() -> type[StripedChests]:
    """:class:`StripedChests`, to call as ``striped_chests(num_images, size, seed=0)``."""
    return StripedChests


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
