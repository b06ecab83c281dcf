"""bs_lib.download, fully offline: a loopback HTTP server serves archives and files the tests build."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
import types
import warnings
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
    OfflineError,
    SourceUnavailableError,
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


# --------------------------------------------------------------------------- registries
# The loopback server (``server``) and the guard that lets a test download from it only
# (``loopback_only``) live in tests/conftest.py: everywhere else BS_OFFLINE=1 holds.


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


def test_file_url_and_zip_archives_work(tmp_path):  # file:// never leaves the machine: allowed offline
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


def test_unreachable_host_gets_a_clear_message(loopback_only, tmp_path):
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
    monkeypatch.delenv("BS_OFFLINE", raising=False)  # the clients below are fakes: nothing reaches the network


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

    assert main(["download", "bse-jsrt", "--data-dir", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "error: bse-jsrt: no Kaggle credentials found" in captured.err and "Traceback" not in captured.err


def test_cli_datasets_lists_every_dataset_with_its_status(tmp_path, capsys):
    from bs_lib.cli import main

    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "szch-x-rays" in out and "huggingface" in out and "missing" in out
    assert "phantom" in out and "built in" in out


# --------------------------------------------------------------------------- datasets of single files


SINGLE_FILES = {f"group/{kind}/{i}.png": f"{kind} image {i} ".encode() * 400 for kind in ("CXR", "BS")
                for i in range(2)}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_registry(server, files: dict[str, bytes], pins: dict[str, str] | None = None, **fields):
    """A registry with one multi-file dataset ``pairs``, every file served by ``server`` under /remote/."""
    for path, data in files.items():
        server.files[f"/remote/{path}"] = data
    pins = {path: sha(data) for path, data in files.items()} | (pins or {})
    listing = {path: {"url": server.url(f"remote/{path}"), "sha256": pins[path]} for path in files}
    return registry_from_dict({"pairs": {"source": "url", "folder": "pairs", "files": listing, **fields}})


def test_files_are_fetched_verified_published_and_then_cached(server, tmp_path):
    registry = files_registry(server, SINGLE_FILES, expect=["group/CXR/*.png"])
    folder = dl.download("pairs", data_dir=tmp_path, registry=registry)
    assert {str(p.relative_to(folder)) for p in folder.rglob("*.png")} == set(SINGLE_FILES)
    assert all((folder / path).read_bytes() == data for path, data in SINGLE_FILES.items())
    record = json.loads((folder / RECORD_NAME).read_text())
    assert record["pins"] == registry["pairs"].pins() and record["fetched"] == 4 and record["from_mirror"] == 0
    assert len(server.requests) == 4 and dl.status(registry["pairs"], tmp_path) == "ready"
    assert leftovers(tmp_path) == ["pairs"] and not (tmp_path / ".downloads").exists()

    assert dl.download("pairs", data_dir=tmp_path, registry=registry) == folder
    assert len(server.requests) == 4  # cached: verified by the record, no request

    changed = files_registry(server, SINGLE_FILES, pins={"group/BS/0.png": "f" * 64})
    assert not dl.is_verified(changed["pairs"], tmp_path)  # the registry's pins changed since


def test_base_url_with_bare_checksums(server, tmp_path):
    for path, data in SINGLE_FILES.items():
        server.files[f"/repo/raw/abc123/{path}"] = data
    registry = registry_from_dict({"pairs": {"source": "url", "base_url": server.url("repo/raw/abc123/"),
                                             "files": {path: sha(data) for path, data in SINGLE_FILES.items()}}})
    folder = dl.download("pairs", data_dir=tmp_path, registry=registry)
    assert (folder / "group/BS/1.png").read_bytes() == SINGLE_FILES["group/BS/1.png"]
    assert "no account needed" in registry["pairs"].how_to_get()


def test_a_wrong_checksum_publishes_nothing_and_a_retry_fetches_only_what_is_missing(server, tmp_path):
    wrong = files_registry(server, SINGLE_FILES, pins={"group/BS/1.png": "0" * 64})
    with pytest.raises(ChecksumMismatchError, match=r"BS/1.png: SHA-256 [0-9a-f]{64} does not match .* 0{64}"):
        dl.download("pairs", data_dir=tmp_path, registry=wrong)
    assert leftovers(tmp_path) == [] and not any((tmp_path / ".downloads").rglob("*.part"))

    served = len(server.requests)
    folder = dl.download("pairs", data_dir=tmp_path, registry=files_registry(server, SINGLE_FILES))
    assert [r["path"] for r in server.requests[served:]] == ["/remote/group/BS/1.png"]  # the rest was kept
    assert json.loads((folder / RECORD_NAME).read_text())["fetched"] == 4


def test_unreachable_files_give_a_clear_error_and_publish_nothing(loopback_only, tmp_path):
    listing = {"a/0.png": {"url": "http://127.0.0.1:9/a/0.png", "sha256": "a" * 64}}  # port 9 is closed
    registry = registry_from_dict({"pairs": {"source": "url", "files": listing}})
    with pytest.raises(SourceUnavailableError, match=r"unreachable or refused .* run the same command again"):
        dl.download("pairs", data_dir=tmp_path, registry=registry)
    assert leftovers(tmp_path) == []


def test_offline_refuses_before_any_request(server, tmp_path, monkeypatch):
    monkeypatch.setenv("BS_OFFLINE", "1")
    registry = files_registry(server, SINGLE_FILES)
    message = r"pairs: 4 of 4 file\(s\) must come from 127.0.0.1.*offline \(BS_OFFLINE=1\)"
    with pytest.raises(OfflineError, match=message):
        dl.download("pairs", data_dir=tmp_path, registry=registry)
    archive = build_tar(DATASET_FILES)
    server.files["/toy.tar.gz"] = archive
    with pytest.raises(OfflineError, match=r"toy.tar.gz: offline \(BS_OFFLINE=1\), so nothing is downloaded"):
        dl.download("toy", data_dir=tmp_path, registry=url_registry(server.url("toy.tar.gz"), sha(archive)))
    assert server.requests == [] and leftovers(tmp_path) == []


def test_offline_refuses_kaggle_and_hugging_face_before_their_clients(tmp_path, monkeypatch):
    monkeypatch.setenv("BS_OFFLINE", "1")
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # importing it would fail: it must not be reached
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(OfflineError, match=r"toy: the Kaggle dataset someone/toy: offline \(BS_OFFLINE=1\)"):
        dl.download("toy", data_dir=tmp_path, registry=registry_from_dict(KAGGLE_REGISTRY))
    registry = registry_from_dict({"hf": {"source": "huggingface", "repo_id": "someone/hf"}})
    with pytest.raises(OfflineError, match=r"Hugging Face dataset someone/hf: offline"):
        dl.download("hf", data_dir=tmp_path, registry=registry)
    assert leftovers(tmp_path) == []


def write_mirror(folder: Path, files: dict[str, bytes]) -> Path:
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    return folder


def test_a_mirror_needs_no_network_even_offline(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TOY_MIRROR", str(write_mirror(tmp_path / "mirror", SINGLE_FILES)))
    monkeypatch.setenv("BS_OFFLINE", "1")
    registry = files_registry(server, SINGLE_FILES, mirror_env="TOY_MIRROR")
    assert dl.status(registry["pairs"], tmp_path / "data") == "ready (local mirror)"
    folder = dl.download("pairs", data_dir=tmp_path / "data", registry=registry)
    assert server.requests == []
    assert all((folder / path).read_bytes() == data for path, data in SINGLE_FILES.items())
    record = json.loads((folder / RECORD_NAME).read_text())
    assert record["from_mirror"] == 4 and record["mirror"] == str(tmp_path / "mirror")
    assert dl.is_verified(registry["pairs"], tmp_path / "data")


def test_a_mirror_file_that_differs_is_fetched_instead(server, tmp_path, monkeypatch):
    mirror = write_mirror(tmp_path / "mirror", SINGLE_FILES | {"group/CXR/0.png": b"edited by hand"})
    monkeypatch.setenv("TOY_MIRROR", str(mirror))
    registry = files_registry(server, SINGLE_FILES, mirror_env="TOY_MIRROR")
    with pytest.warns(UserWarning, match=r"CXR/0.png: not a byte-identical copy"):
        folder = dl.download("pairs", data_dir=tmp_path / "data", registry=registry)
    assert [r["path"] for r in server.requests] == ["/remote/group/CXR/0.png"]
    assert (folder / "group/CXR/0.png").read_bytes() == SINGLE_FILES["group/CXR/0.png"]


def test_the_real_pairs_mirror_is_found_through_config(tmp_path, monkeypatch):
    monkeypatch.setenv("BS_REAL_PAIRS", str(tmp_path))
    assert dl.load_registry()["real-pairs"].mirror() == tmp_path
    monkeypatch.setenv("BS_REAL_PAIRS", str(tmp_path / "absent"))
    assert dl.load_registry()["real-pairs"].mirror() is None


BAD_FILE_ENTRIES = {
    "archive and files": ({"url": "https://x/a.zip", "files": {"a.png": "a" * 64}}, "either an archive"),
    "no checksum": ({"files": {"a.png": {"url": "https://x/a.png"}}}, "no valid sha256"),
    "short checksum": ({"files": {"a.png": {"url": "https://x/a.png", "sha256": "abc"}}}, "no valid sha256"),
    "climbing path": ({"files": {"../a.png": {"url": "https://x/a.png", "sha256": "a" * 64}}}, "'..' component"),
    "absolute path": ({"files": {"/etc/a.png": {"url": "https://x/a.png", "sha256": "a" * 64}}}, "absolute path"),
    "no url": ({"files": {"a.png": "a" * 64}}, "no url"),
    "odd scheme": ({"files": {"a.png": {"url": "ftp://x/a.png", "sha256": "a" * 64}}}, "unsupported URL"),
    "empty files": ({"files": {}}, "'files' must map"),
    "mirror of an archive": ({"url": "https://x/a.zip", "mirror_env": "X"}, "only applies to datasets of single"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILE_ENTRIES))
def test_the_registry_refuses_bad_file_entries(case):
    fields, message = BAD_FILE_ENTRIES[case]
    with pytest.raises(DownloadError, match=message):
        registry_from_dict({"pairs": {"source": "url", **fields}})


# --------------------------------------------------------------------------- the registered real pairs


def test_the_registered_real_pairs_are_pinned_github_files():
    registry = dl.load_registry()
    real = registry["real-pairs"]
    assert real.source == "url" and real.mirror_env == "BS_REAL_PAIRS" and len(real.files) == 12
    remote = {"szch-bsldm": "https://github.com/diaoquesang/BS-LDM/raw/44a7246/BS-LDM/{kind}/{i}.png",
              "szch-bsdiff": "https://github.com/Benny0323/BS-Diff/raw/e0b0654/Data/{kind}_Aug/{i}.png"}
    for item in real.files:
        group, kind, name = item.path.split("/")
        assert item.url == remote[group].format(kind=kind, i=name[0])
        assert kind in ("CXR", "BS") and name in ("0.png", "1.png", "2.png")
    gusarev = registry["gusarev-des"]
    commit = "f29ddb5c009256329520dffc61534157252d4f85"
    assert len(gusarev.files) == 20 and {f.path.split("/")[0] for f in gusarev.files} == {"authentic", "des"}
    assert all(f"xKev1n/xU-NetFullSharp/raw/{commit}/images/xray/external_test/GusarevDES/{f.path}" in f.url
               for f in gusarev.files)
    for entry in (real, gusarev):
        assert (dl.CARDS_DIR / entry.card).is_file() and "no account needed" in entry.how_to_get()


def test_the_real_pairs_pins_match_the_local_copies(real_pairs):
    pins = dl.load_registry()["real-pairs"].pins()
    local = {str(p.relative_to(real_pairs)): dl.sha256_of(p) for p in real_pairs.rglob("*.png")}
    assert local == pins


def test_download_real_pairs_from_the_local_mirror_offline(real_pairs, tmp_path, monkeypatch):
    monkeypatch.setenv("BS_OFFLINE", "1")
    folder = dl.download("real-pairs", data_dir=tmp_path)
    assert json.loads((folder / RECORD_NAME).read_text())["from_mirror"] == 12
    assert dl.status(dl.load_registry()["real-pairs"], tmp_path) == "ready"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dl.download("real-pairs", data_dir=tmp_path) == folder
