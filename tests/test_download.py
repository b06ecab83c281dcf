"""bs_lib.download, fully offline: a loopback HTTP server serves archives the tests build."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import sys
import tarfile
import threading
import types
import zipfile
from pathlib import Path

import pytest

from bs_lib import download as dl
from bs_lib.download import (
    RECORD_NAME,
    ChecksumMismatchError,
    CredentialsMissingError,
    DownloadError,
    ManualDownloadRequired,
    UnsafeArchiveError,
    registry_from_dict,
)

# --------------------------------------------------------------------------- archives


def build_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build_tar_with_link(link_name: str, target: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        info = tarfile.TarInfo(link_name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        bundle.addfile(info)
        data = b"payload"
        escape = tarfile.TarInfo(f"{link_name}/evil.txt")
        escape.size = len(data)
        bundle.addfile(escape, io.BytesIO(data))
    return buffer.getvalue()


def build_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


DATASET_FILES = {f"toy/{kind}/{i}.png": f"{kind}-{i}".encode() * 5000 for kind in ("CXR", "BS") for i in range(3)}


# --------------------------------------------------------------------------- a loopback server


class ArchiveServer:
    """Serves ``self.files`` on 127.0.0.1; ``cut_after`` bytes makes the next response stop early."""

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
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"


@pytest.fixture
def server():
    archive_server = ArchiveServer()
    archive_server.thread.start()
    yield archive_server
    archive_server.httpd.shutdown()
    archive_server.httpd.server_close()
    archive_server.thread.join(timeout=5)


def url_registry(url: str, sha256: str | None, expect=("toy/CXR/*.png",)):
    return registry_from_dict({"toy": {"title": "toy pairs", "source": "url", "url": url, "sha256": sha256,
                                       "folder": "toy", "expect": list(expect)}})


def leftovers(data_dir: Path) -> list[str]:
    """Anything a failed download left where a dataset or staging folder would be."""
    return sorted(p.name for p in data_dir.iterdir() if p.name != ".downloads") if data_dir.exists() else []


# --------------------------------------------------------------------------- the happy path


def test_download_verify_extract_and_skip_when_present(server, tmp_path):
    archive = build_tar(DATASET_FILES)
    server.files["/toy.tar.gz"] = archive
    registry = url_registry(server.url("toy.tar.gz"), hashlib.sha256(archive).hexdigest())
    folder = dl.download("toy", data_dir=tmp_path, registry=registry)
    assert folder == tmp_path / "toy"
    assert (folder / "toy/CXR/0.png").read_bytes() == DATASET_FILES["toy/CXR/0.png"]
    record = json.loads((folder / RECORD_NAME).read_text())
    assert record["files"] == 6 and record["sha256"] == hashlib.sha256(archive).hexdigest()
    assert dl.is_verified(registry["toy"], tmp_path) and dl.status(registry["toy"], tmp_path) == "ready"
    assert leftovers(tmp_path) == ["toy"] and not any((tmp_path / ".downloads").rglob("*.*"))

    served = len(server.requests)
    assert dl.download("toy", data_dir=tmp_path, registry=registry) == folder
    assert len(server.requests) == served  # skipped: present and verified

    (folder / "toy/CXR/0.png").write_bytes(b"tampered")
    assert dl.status(registry["toy"], tmp_path) == "changed since download"
    with pytest.raises(DownloadError, match=r"exists but was not written by a verified download"):
        dl.download("toy", data_dir=tmp_path, registry=registry)
    dl.download("toy", data_dir=tmp_path, registry=registry, force=True)
    assert (folder / "toy/CXR/0.png").read_bytes() == DATASET_FILES["toy/CXR/0.png"]


def test_file_url_and_zip_archives_work(tmp_path):
    archive = tmp_path / "src" / "toy.zip"
    archive.parent.mkdir()
    archive.write_bytes(build_zip(DATASET_FILES))
    registry = url_registry(archive.as_uri(), dl.sha256_of(archive))
    folder = dl.download("toy", data_dir=tmp_path / "data", registry=registry)
    assert sorted(p.name for p in (folder / "toy/BS").iterdir()) == ["0.png", "1.png", "2.png"]


# --------------------------------------------------------------------------- failures


def test_checksum_mismatch_deletes_the_download_and_installs_nothing(server, tmp_path):
    server.files["/toy.tar.gz"] = build_tar(DATASET_FILES)
    registry = url_registry(server.url("toy.tar.gz"), "0" * 64)
    with pytest.raises(ChecksumMismatchError, match=r"SHA-256 [0-9a-f]{64} does not match the registry's 0{64}"):
        dl.download("toy", data_dir=tmp_path, registry=registry)
    assert leftovers(tmp_path) == []
    assert not any((tmp_path / ".downloads").rglob("*.part"))


def test_interrupted_download_leaves_no_dataset_and_a_retry_resumes(server, tmp_path):
    archive = build_tar(DATASET_FILES)
    server.files["/toy.tar.gz"] = archive
    server.cut_after = len(archive) // 3
    registry = url_registry(server.url("toy.tar.gz"), hashlib.sha256(archive).hexdigest())
    with pytest.raises(DownloadError, match=r"interrupted .* run the same command again to resume"):
        dl.download("toy", data_dir=tmp_path, registry=registry)
    assert leftovers(tmp_path) == []  # no dataset folder, no staging folder
    parts = list((tmp_path / ".downloads").rglob("*.part"))
    assert len(parts) == 1 and parts[0].stat().st_size == len(archive) // 3

    folder = dl.download("toy", data_dir=tmp_path, registry=registry)
    assert server.requests[-1]["range"] == f"bytes={len(archive) // 3}-"
    assert (folder / "toy/BS/2.png").read_bytes() == DATASET_FILES["toy/BS/2.png"]


def test_unreachable_host_gets_a_clear_message(tmp_path):
    registry = url_registry("http://127.0.0.1:9/none.tar.gz", None)  # port 9 (discard) is closed
    with pytest.raises(DownloadError, match=r"unreachable or refused .* run the same command again"):
        dl.download("toy", data_dir=tmp_path, registry=registry)
    assert leftovers(tmp_path) == []


def test_layout_mismatch_is_rejected(server, tmp_path):
    archive = build_tar({"other/readme.txt": b"hello"})
    server.files["/toy.tar.gz"] = archive
    registry = url_registry(server.url("toy.tar.gz"), hashlib.sha256(archive).hexdigest())
    with pytest.raises(DownloadError, match=r"expected layout \(nothing matches toy/CXR/\*.png\).*'other'"):
        dl.download("toy", data_dir=tmp_path, registry=registry)
    assert leftovers(tmp_path) == []


MALICIOUS = {
    "absolute path": (lambda: build_tar({"/tmp/bs_lib_evil.txt": b"x"}), "is an absolute path"),
    "dot-dot entry": (lambda: build_tar({"toy/../../evil.txt": b"x"}), "'..' component"),
    "symlink escaping": (lambda: build_tar_with_link("toy/link", "/etc"), "is a link to '/etc'"),
    "zip dot-dot entry": (lambda: build_zip({"../evil.txt": b"x"}), "'..' component"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_archive_is_refused_before_anything_is_written(server, tmp_path, case):
    make, message = MALICIOUS[case]
    archive = make()
    server.files["/toy.tar.gz"] = archive
    data_dir = tmp_path / "data"
    registry = url_registry(server.url("toy.tar.gz"), hashlib.sha256(archive).hexdigest())
    with pytest.raises(UnsafeArchiveError, match=message):
        dl.download("toy", data_dir=data_dir, registry=registry)
    assert leftovers(data_dir) == []
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/bs_lib_evil.txt").exists()


def test_manual_dataset_explains_how_to_get_it(tmp_path):
    registry = registry_from_dict({"jsrt": {"source": "manual", "instructions": "Register on the JSRT site."}})
    with pytest.raises(ManualDownloadRequired, match=r"jsrt: cannot be downloaded automatically. Register"):
        dl.download("jsrt", data_dir=tmp_path, registry=registry)


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(DownloadError, match=r"Unknown dataset 'szch'; registered datasets: .*szch-x-rays"):
        dl.download("szch")


# --------------------------------------------------------------------------- Kaggle and Hugging Face, without network


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR", "HF_TOKEN",
                 "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle-config"))


KAGGLE_REGISTRY = {"toy": {"source": "kaggle", "handle": "someone/toy", "folder": "toy", "expect": ["CXR/*.png"]}}


def test_kaggle_without_credentials_says_how_to_set_them(no_credentials, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # importing it would fail: it must not be reached
    with pytest.raises(CredentialsMissingError, match=r"KAGGLE_USERNAME and KAGGLE_KEY .*KAGGLE_API_TOKEN.*secrets"):
        dl.download("toy", data_dir=tmp_path / "data", registry=registry_from_dict(KAGGLE_REGISTRY))
    assert capsys.readouterr().out == ""
    assert leftovers(tmp_path / "data") == []


def fake_kagglehub(behaviour):
    module = types.ModuleType("kagglehub")
    module.dataset_download = behaviour
    return module


def test_kaggle_download_with_a_fake_client(no_credentials, tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "student")
    monkeypatch.setenv("KAGGLE_KEY", "s3cr3t-key-value")
    calls = []

    def dataset_download(handle, path=None, *, force_download=False, output_dir=None):
        calls.append(handle)
        (Path(output_dir) / "CXR").mkdir(parents=True)
        (Path(output_dir) / "CXR" / "0.png").write_bytes(b"png")
        return output_dir

    monkeypatch.setitem(sys.modules, "kagglehub", fake_kagglehub(dataset_download))
    folder = dl.download("toy", data_dir=tmp_path, registry=registry_from_dict(KAGGLE_REGISTRY))
    assert calls == ["someone/toy"] and (folder / "CXR/0.png").is_file()
    assert json.loads((folder / RECORD_NAME).read_text())["handle"] == "someone/toy"
    assert "s3cr3t" not in (folder / RECORD_NAME).read_text()


def test_kaggle_failure_never_reveals_the_secret(no_credentials, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KAGGLE_USERNAME", "student")
    monkeypatch.setenv("KAGGLE_KEY", "s3cr3t-key-value")

    def dataset_download(handle, path=None, *, force_download=False, output_dir=None):
        print("client chatter with s3cr3t-key-value")
        raise SystemExit(1)  # what kaggle's authenticate() does

    monkeypatch.setitem(sys.modules, "kagglehub", fake_kagglehub(dataset_download))
    with pytest.raises(DownloadError) as raised:
        dl.download("toy", data_dir=tmp_path / "data", registry=registry_from_dict(KAGGLE_REGISTRY))
    assert "Kaggle download of someone/toy failed (SystemExit)" in str(raised.value)
    assert "s3cr3t" not in str(raised.value) and raised.value.__cause__ is None
    assert leftovers(tmp_path / "data") == []
    assert dl.kaggle_credentials_source() == "environment variables KAGGLE_USERNAME / KAGGLE_KEY"


def test_huggingface_with_a_fake_client(no_credentials, tmp_path, monkeypatch):
    import huggingface_hub

    def snapshot_download(repo_id, *, repo_type=None, local_dir=None, token=None, **_):
        assert repo_type == "dataset" and token is None
        (Path(local_dir) / "CXR").mkdir(parents=True)
        (Path(local_dir) / "CXR" / "0.png").write_bytes(b"png")
        (Path(local_dir) / ".cache").mkdir()
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    registry = registry_from_dict({"hf": {"source": "huggingface", "repo_id": "someone/hf", "expect": ["CXR/*"]}})
    folder = dl.download("hf", data_dir=tmp_path, registry=registry)
    assert (folder / "CXR/0.png").is_file() and not (folder / ".cache").exists()


def test_huggingface_offline_gets_a_clear_message(no_credentials, tmp_path, monkeypatch):
    import huggingface_hub

    def snapshot_download(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    registry = registry_from_dict({"hf": {"source": "huggingface", "repo_id": "someone/hf"}})
    with pytest.raises(DownloadError, match=r"Hugging Face download of someone/hf failed .*set HF_TOKEN"):
        dl.download("hf", data_dir=tmp_path / "data", registry=registry)
    assert leftovers(tmp_path / "data") == []


# --------------------------------------------------------------------------- the registry and the command line


def test_the_repository_registry_is_complete():
    registry = dl.load_registry()
    for name in ("phantom", "bse-jsrt", "jsrt-bone-masks", "jsrt-bse-baidu", "szch-x-rays", "jsrt", "pydicom-rg1"):
        entry = registry[name]
        assert entry.card and (dl.CARDS_DIR / entry.card).is_file(), f"{name} has no card"
    assert registry["bse-jsrt"].handle == "hmchuong/xray-bone-shadow-supression"
    assert registry["szch-x-rays"].repo_id == "diaoquesang/SZCH-X-Rays"


def test_cli_download_reports_errors_without_a_traceback(no_credentials, tmp_path, capsys):
    from bs_lib.cli import main

    assert main(["download", "bse-jsrt", "--data-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "error: bse-jsrt: no Kaggle credentials found" in captured.err and "Traceback" not in captured.err


def test_cli_datasets_lists_every_dataset_with_its_status(tmp_path, capsys):
    from bs_lib.cli import main

    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "szch-x-rays" in out and "huggingface" in out and "missing" in out
    assert "phantom" in out and "built in" in out
