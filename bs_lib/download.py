"""Downloading datasets safely: credentials, checksums, atomic folders, safe archives.

Every dataset of the course is described once, in ``bs_lib/data/registry.yaml``
(where it comes from, which folder it lands in, what its files look like). A
download follows the same five steps whatever the source:

1. **Skip** when the dataset folder exists and its record (``.bs_lib_download.json``,
   written at the end of a good download) still matches the files on disk.
2. **Fetch** into a staging name beside the destination, never into the
   destination itself: an archive downloads to ``<name>.part`` (resumed with an
   HTTP ``Range`` request after an interruption); a dataset of single files
   (``files:`` in the registry) fetches each the same way, or copies it from a
   local *mirror* that holds byte-identical copies (:mod:`bs_lib.fetch`);
   Kaggle and Hugging Face snapshots download into ``.staging-<name>-*``.
3. **Verify**: the SHA-256 of the archive, or of every single file, against
   the registry, then the expected layout (``expect`` globs).
4. **Extract safely**: every archive member is checked *before* anything is
   written; absolute paths, ``..`` components, links and device files are refused.
5. **Publish atomically**: one ``os.replace`` renames the staging folder to the
   dataset folder, so a dataset is either completely there or not there.

Credentials come from environment variables (``KAGGLE_USERNAME`` +
``KAGGLE_KEY`` or ``KAGGLE_API_TOKEN``; ``HF_TOKEN``), the usual files
(``~/.kaggle/kaggle.json``), or Colab secrets. They are never printed, logged or
returned: functions here only report *where* a credential was found.

The Kaggle clients are imported lazily, inside the download function and after
the credentials check: ``import kaggle`` without credentials prints a long
banner, and ``authenticate()`` raises ``SystemExit``, which ``except Exception``
does not catch.

``BS_OFFLINE=1`` (:func:`bs_lib.config.offline`) switches the network off:
every download that would need it stops with :class:`OfflineError`, while
verified folders and mirrors keep working. The test suite sets it.

Command line: ``python -m bs_lib download NAME [--data-dir DIR] [--force]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from bs_lib import config
from bs_lib.fetch import (  # how bytes arrive; the errors and helpers are re-exported from here too
    ChecksumMismatchError,  # noqa: F401
    DownloadError,
    OfflineError,  # noqa: F401
    RemoteFile,
    SourceUnavailableError,  # noqa: F401
    fetch_files,
    fetch_url,
    origins,
    path_problem,
    remote_files,
    require_network,
    sha256_of,  # noqa: F401
)
from bs_lib.resources import course_path

REGISTRY_PATH = Path(__file__).resolve().parent / "data" / "registry.yaml"
CARDS_DIR = course_path("datasets")  # the dataset cards (shipped in the package)
RECORD_NAME = ".bs_lib_download.json"
DOWNLOADABLE_SOURCES = ("kaggle", "huggingface", "url")


class CredentialsMissingError(DownloadError):
    """The source needs credentials and none were found."""


class ManualDownloadRequired(DownloadError):
    """The dataset cannot be fetched automatically (registration, web sign-in)."""


class UnsafeArchiveError(DownloadError):
    """An archive member would be written outside the destination folder."""


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of ``bs_lib/data/registry.yaml``."""

    name: str
    title: str
    source: str
    folder: str | None = None
    handle: str | None = None  # Kaggle owner/slug
    repo_id: str | None = None  # Hugging Face dataset id
    url: str | None = None
    sha256: str | None = None
    package: str | None = None
    instructions: str | None = None
    card: str | None = None
    expect: tuple[str, ...] = ()
    files: tuple[RemoteFile, ...] = ()  # a dataset of single files, each pinned by its SHA-256
    mirror_env: str | None = None  # names the variable of a local folder with byte-identical copies
    details: dict[str, Any] = field(default_factory=dict)

    def path(self, data_dir: Path | None = None) -> Path:
        """Where the dataset lives: ``<data dir>/<folder>``."""
        return Path(data_dir or config.data_dir()) / (self.folder or self.name)

    def pins(self) -> dict[str, str]:
        """``local path -> SHA-256`` of every file of a multi-file dataset (empty for archives)."""
        return {item.path: item.sha256 for item in self.files}

    def mirror(self) -> Path | None:
        """The local folder with byte-identical copies of the files, or None when absent.

        ``mirror_env`` names an environment variable holding the folder;
        ``BS_REAL_PAIRS`` is resolved by :func:`bs_lib.config.real_pairs_dir`,
        which also knows the ``shared/data/real-pairs`` folder beside the repository.
        """
        if not self.mirror_env:
            return None
        if self.mirror_env == config.REAL_PAIRS_ENV:
            return config.real_pairs_dir()
        chosen = os.environ.get(self.mirror_env)
        folder = Path(chosen).expanduser() if chosen else None
        return folder if folder is not None and folder.is_dir() else None

    def how_to_get(self) -> str:
        """One or two sentences telling a person how to obtain the dataset."""
        if self.source in DOWNLOADABLE_SOURCES:
            where = {"kaggle": f"from the Kaggle dataset {self.handle}",
                     "huggingface": f"from the Hugging Face dataset {self.repo_id}",
                     "url": f"public files from {origins(self.files)}, no account needed" if self.files
                     else f"from {self.url}"}[self.source]
            text = f"Download it with `python -m bs_lib download {self.name}` ({where})."
            if self.source == "kaggle":
                text += " " + KAGGLE_CREDENTIAL_HELP
            if self.mirror_env:
                text += f" Or point ${self.mirror_env} at a folder holding copies of the files."
            return text
        return self.instructions or f"See datasets/{self.card or self.name + '.md'}."


_KNOWN_FIELDS = {"title", "source", "folder", "handle", "repo_id", "url", "sha256", "package", "instructions",
                 "card", "expect", "files", "base_url", "mirror_env"}


def load_registry(path: str | Path | None = None) -> dict[str, DatasetEntry]:
    """Read the registry (``bs_lib/data/registry.yaml`` by default) into :class:`DatasetEntry` objects."""
    import yaml

    path = Path(path) if path is not None else REGISTRY_PATH
    if not path.is_file():
        raise DownloadError(
            f"{path}: the dataset registry is missing. It ships with the course repository "
            f"(bs_lib/data/registry.yaml); reinstall the course library (pip install -e . in a clone)."
        )
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return registry_from_dict(document.get("datasets", document), origin=str(path))


def registry_from_dict(entries: dict[str, dict], origin: str = "registry") -> dict[str, DatasetEntry]:
    """Build entries from a mapping ``name -> fields`` (tests build small registries this way)."""
    registry = {}
    for name, fields in entries.items():
        if "source" not in fields:
            raise DownloadError(f"{origin}: dataset {name!r} has no 'source' field.")
        known = {key: value for key, value in fields.items() if key in _KNOWN_FIELDS}
        known["expect"] = tuple(known.get("expect") or ())
        _check_file_fields(name, known, origin)
        if "files" in known:
            known["files"] = remote_files(name, known["files"], known.get("base_url"), origin)
        details = {key: value for key, value in fields.items() if key not in _KNOWN_FIELDS}
        registry[name] = DatasetEntry(name=name, title=fields.get("title", name), details=details,
                                      **{k: v for k, v in known.items() if k not in ("title", "base_url")})
    return registry


def _check_file_fields(name: str, fields: dict[str, Any], origin: str) -> None:
    """A ``url`` dataset is one archive (``url`` + ``sha256``) or single files (``files``), never both."""
    where = f"{origin}: dataset {name!r}"
    if "files" in fields and fields["source"] != "url":
        raise DownloadError(f"{where}: 'files' needs source: url (it is {fields['source']!r}).")
    if "files" in fields and ("url" in fields or "sha256" in fields):
        raise DownloadError(f"{where}: give either an archive ('url' + 'sha256') or 'files', not both.")
    if fields["source"] == "url" and "files" not in fields and not fields.get("url"):
        raise DownloadError(f"{where}: source: url needs a 'url' (an archive) or 'files'.")
    for key in ("base_url", "mirror_env"):
        if key in fields and "files" not in fields:
            raise DownloadError(f"{where}: {key!r} only applies to datasets of single files ('files').")


def get_entry(name: str, registry: dict[str, DatasetEntry] | None = None) -> DatasetEntry:
    """The registry entry called ``name``; a misspelling gets the list of names."""
    registry = registry if registry is not None else load_registry()
    if name not in registry:
        raise DownloadError(f"Unknown dataset {name!r}; registered datasets: {', '.join(registry)}.")
    return registry[name]


# --------------------------------------------------------------------------- credentials


KAGGLE_CREDENTIAL_HELP = (
    "Kaggle needs an API token: set the environment variables KAGGLE_USERNAME and KAGGLE_KEY "
    "(or KAGGLE_API_TOKEN), or put kaggle.json in ~/.kaggle/, or on Colab add them as secrets "
    "(key icon in the left bar). Create the token on https://www.kaggle.com/settings (API section)."
)


def _colab_secret(name: str) -> str | None:
    """A Colab secret's value, or None outside Colab or when it is not shared with the notebook."""
    if "google.colab" not in sys.modules:
        return None
    try:
        from google.colab import userdata

        return userdata.get(name) or None
    except Exception:  # SecretNotFoundError, NotebookAccessError, TimeoutException...
        return None


def kaggle_credentials_source() -> str | None:
    """Where Kaggle credentials are found (a description, never the secret), or None.

    Credentials found in Colab secrets are copied into this process's
    environment so that the Kaggle clients find them.
    """
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "environment variables KAGGLE_USERNAME / KAGGLE_KEY"
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "environment variable KAGGLE_API_TOKEN"
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")
    for file_name in ("kaggle.json", "access_token"):
        if (config_dir / file_name).is_file():
            return f"{config_dir / file_name}"
    username, key = _colab_secret("KAGGLE_USERNAME"), _colab_secret("KAGGLE_KEY")
    if username and key:
        os.environ["KAGGLE_USERNAME"], os.environ["KAGGLE_KEY"] = username, key
        return "Colab secrets KAGGLE_USERNAME / KAGGLE_KEY"
    token = _colab_secret("KAGGLE_API_TOKEN")
    if token:
        os.environ["KAGGLE_API_TOKEN"] = token
        return "Colab secret KAGGLE_API_TOKEN"
    return None


def huggingface_token() -> str | None:
    """``HF_TOKEN`` from the environment or Colab secrets (None: anonymous access)."""
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or _colab_secret("HF_TOKEN")


def credentials_available(source: str) -> bool:
    """True when a download from ``source`` can start (public sources need none)."""
    if source == "kaggle":
        return kaggle_credentials_source() is not None
    return source in ("huggingface", "url")


# --------------------------------------------------------------------------- status


def _folder_summary(folder: Path) -> tuple[int, int]:
    """(number of files, total bytes) below ``folder``, the download record excluded."""
    count = total = 0
    for path in folder.rglob("*"):
        if path.is_file() and path.name != RECORD_NAME:
            count += 1
            total += path.stat().st_size
    return count, total


def read_record(folder: Path) -> dict[str, Any] | None:
    record = folder / RECORD_NAME
    if not record.is_file():
        return None
    try:
        return json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_verified(entry: DatasetEntry, data_dir: Path | None = None) -> bool:
    """True when the dataset folder exists and still matches the record of its download."""
    folder = entry.path(data_dir)
    record = read_record(folder) if folder.is_dir() else None
    if record is None:
        return False
    if entry.sha256 and record.get("sha256") != entry.sha256:
        return False
    if entry.files and record.get("pins") != entry.pins():  # the registry changed a file since
        return False
    return [record.get("files"), record.get("bytes")] == list(_folder_summary(folder))


def status(entry: DatasetEntry, data_dir: Path | None = None) -> str:
    """A short word for the ``datasets`` listing: ready, present, missing, built in..."""
    if entry.source == "builtin":
        return "built in"
    if entry.source == "pip":
        import importlib.util

        return "installed" if importlib.util.find_spec("data_store") is not None else "not installed"
    folder = entry.path(data_dir)
    if is_verified(entry, data_dir):
        return "ready"
    if entry.mirror() is not None:
        return "ready (local mirror)"
    if folder.is_dir() and any(folder.iterdir()):
        return "present (unverified)" if read_record(folder) is None else "changed since download"
    return "missing"


# --------------------------------------------------------------------------- safe extraction


def check_archive(archive: Path) -> list[str]:
    """Every member name of a zip or tar archive, after checking that each is safe to extract.

    Raises :class:`UnsafeArchiveError` (before anything is written) for absolute
    paths, ``..`` components, symbolic or hard links, and device files.
    """
    names: list[str] = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                problem = path_problem(info.filename) or ("a symbolic link" if is_link else None)
                if problem:
                    raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is {problem}; refused.")
                names.append(info.filename)
        return names
    try:
        with tarfile.open(archive) as bundle:
            for member in bundle.getmembers():
                problem = path_problem(member.name)
                if member.issym() or member.islnk():
                    problem = problem or f"a link to {member.linkname!r}"
                elif not (member.isfile() or member.isdir()):
                    problem = problem or "a device, FIFO or other special file"
                if problem:
                    raise UnsafeArchiveError(f"{archive}: member {member.name!r} is {problem}; refused.")
                names.append(member.name)
    except tarfile.TarError as error:
        raise DownloadError(f"{archive}: not a readable zip or tar archive ({error}).") from error
    return names


def safe_extract(archive: Path, destination: Path) -> None:
    """Extract ``archive`` into ``destination`` after :func:`check_archive` approved every member."""
    check_archive(archive)
    destination.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(destination)
        return
    with tarfile.open(archive) as bundle:
        if hasattr(tarfile, "data_filter"):
            bundle.extractall(destination, filter="data")
        else:  # pragma: no cover - Python without extraction filters; members were checked above
            bundle.extractall(destination)


# --------------------------------------------------------------------------- publishing


def _check_layout(entry: DatasetEntry, folder: Path) -> None:
    missing = [pattern for pattern in entry.expect if next(folder.glob(pattern), None) is None]
    if missing:
        found = sorted(str(p.relative_to(folder)) for p in folder.iterdir())[:10]
        raise DownloadError(
            f"{entry.name}: the download does not have the expected layout (nothing matches "
            f"{', '.join(missing)}); top level holds {found or 'nothing'}. The source may have changed: "
            f"check the dataset card datasets/{entry.card or entry.name + '.md'}."
        )


def _publish(entry: DatasetEntry, staging: Path, target: Path, extra: dict[str, Any]) -> Path:
    """Record, then atomically rename the staging folder into place."""
    _check_layout(entry, staging)
    files, total = _folder_summary(staging)
    record = {"name": entry.name, "source": entry.source, "files": files, "bytes": total,
              "downloaded": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
    (staging / RECORD_NAME).write_text(json.dumps(record, indent=2), encoding="utf-8")
    if target.exists():
        old = target.with_name(f".old-{target.name}-{os.getpid()}")
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)
    return target


@contextlib.contextmanager
def _staging_folder(target: Path):
    """A fresh folder beside ``target`` that is removed unless it was renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{target.name}-", dir=target.parent))
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------- per source


def _download_files(entry: DatasetEntry, staging: Path, data_dir: Path) -> dict[str, Any]:
    """Single pinned files, from the mirror when it has them, else from their URLs."""
    cache = data_dir / ".downloads" / entry.name
    mirror = entry.mirror()
    counts = fetch_files(entry.name, entry.files, staging, cache, mirror)
    _remove_empty_folders(cache)
    return {"pins": entry.pins(), "mirror": str(mirror) if counts["mirror"] else None,
            "from_mirror": counts["mirror"], "fetched": counts["network"] + counts["cache"]}


def _remove_empty_folders(folder: Path) -> None:
    """Remove ``folder`` and its parent when they are empty (a partial download of another dataset stays)."""
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            path.rmdir()
    for path in (folder, folder.parent):
        with contextlib.suppress(OSError):
            path.rmdir()


def _download_url(entry: DatasetEntry, staging: Path, data_dir: Path) -> dict[str, Any]:
    if entry.files:
        return _download_files(entry, staging, data_dir)
    if not entry.url:
        raise DownloadError(f"{entry.name}: the registry gives no 'url'.")
    archive_name = PurePosixPath(urllib.request.url2pathname(entry.url.split("?")[0])).name or "archive"
    archive = data_dir / ".downloads" / entry.name / archive_name
    fetch_url(entry.url, archive, sha256=entry.sha256)
    try:
        safe_extract(archive, staging)
    finally:
        archive.unlink(missing_ok=True)
        _remove_empty_folders(archive.parent)
    return {"url": entry.url, "sha256": entry.sha256 or None}


def _download_kaggle(entry: DatasetEntry, staging: Path, data_dir: Path) -> dict[str, Any]:
    require_network(f"{entry.name}: the Kaggle dataset {entry.handle}")
    if kaggle_credentials_source() is None:
        raise CredentialsMissingError(f"{entry.name}: no Kaggle credentials found. {KAGGLE_CREDENTIAL_HELP}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # keep client banners out of notebook outputs
            import kagglehub
        kagglehub.dataset_download(entry.handle, output_dir=str(staging))
    except (Exception, SystemExit) as error:
        raise DownloadError(
            f"{entry.name}: the Kaggle download of {entry.handle} failed ({type(error).__name__}). "
            f"Check the network, that the credentials are valid and that you accepted the dataset's "
            f"terms on kaggle.com; then run again."
        ) from None
    return {"handle": entry.handle}


def _download_huggingface(entry: DatasetEntry, staging: Path, data_dir: Path) -> dict[str, Any]:
    require_network(f"{entry.name}: the Hugging Face dataset {entry.repo_id}")
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(entry.repo_id, repo_type="dataset", local_dir=str(staging),
                          token=huggingface_token() or None)
    except Exception as error:
        hint = ("set HF_TOKEN (environment variable or Colab secret) and accept the dataset's terms on "
                "huggingface.co" if huggingface_token() is None else "check that HF_TOKEN is valid")
        raise DownloadError(
            f"{entry.name}: the Hugging Face download of {entry.repo_id} failed ({type(error).__name__}). "
            f"Check the network (HF_HUB_OFFLINE must not be set), or {hint}; then run again."
        ) from None
    shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping
    return {"repo_id": entry.repo_id}


_FETCHERS = {"url": _download_url, "kaggle": _download_kaggle, "huggingface": _download_huggingface}


def download(
    name: str,
    data_dir: str | Path | None = None,
    force: bool = False,
    registry: dict[str, DatasetEntry] | None = None,
) -> Path:
    """Download dataset ``name`` of the registry into the data directory; return its folder.

    Skips the work when the folder is already there and verified (``force=True``
    downloads again and replaces it only once the new copy is complete).
    """
    entry = get_entry(name, registry)
    data_dir = Path(data_dir) if data_dir is not None else config.data_dir()
    if entry.source not in _FETCHERS:
        raise ManualDownloadRequired(f"{name}: cannot be downloaded automatically. {entry.how_to_get()}")
    target = entry.path(data_dir)
    if not force and is_verified(entry, data_dir):
        return target
    if not force and target.is_dir() and any(target.iterdir()):
        raise DownloadError(
            f"{target}: exists but was not written by a verified download (files changed or copied by "
            f"hand). Use force=True (--force) to download a fresh copy, which replaces it when complete."
        )
    with _staging_folder(target) as staging:
        extra = _FETCHERS[entry.source](entry, staging, data_dir)
        return _publish(entry, staging, target, extra)


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="dataset name (see: python -m bs_lib datasets)")
    parser.add_argument("--data-dir", type=Path, default=None, help="data directory (default: $BS_DATA_DIR)")
    parser.add_argument("--force", action="store_true", help="download again even when present")


def run(args: argparse.Namespace) -> int:
    folder = download(args.name, data_dir=args.data_dir, force=args.force)  # errors: one line, exit 2 (bs_lib.cli)
    print(f"{args.name}: ready in {folder}")
    return 0
