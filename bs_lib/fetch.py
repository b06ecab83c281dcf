"""How bytes arrive on the disk: one URL, a list of pinned files, a local mirror, the offline switch.

:mod:`bs_lib.download` decides *what* a dataset is and *where* it lands; this
module only moves bytes, and trusts none of them until their SHA-256 matched:

* :func:`fetch_url` downloads one URL through a ``.part`` file, resumes an
  interrupted transfer with an HTTP ``Range`` request, and renames the file into
  place only when it is complete and its checksum matched.
* :func:`fetch_files` gathers a dataset made of single files
  (:class:`RemoteFile`: local path, URL, SHA-256). Each file comes from a
  *mirror* when one is present (a local folder holding byte-identical copies,
  so no network is needed), otherwise from its URL.
* :func:`require_network` is the one gate to the network. With ``BS_OFFLINE=1``
  (:func:`bs_lib.config.offline`) every download stops there, before any
  request, with :class:`OfflineError`; copies from a mirror and ``file://``
  URLs still work, because they never leave the machine.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from bs_lib import config

CHUNK_BYTES = 1 << 20
URL_SCHEMES = ("https", "http", "file")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class DownloadError(RuntimeError):
    """A dataset could not be downloaded; the message says why and what to do."""


class ChecksumMismatchError(DownloadError):
    """The downloaded bytes are not the ones the registry recorded."""


class OfflineError(DownloadError):
    """Downloads are switched off (``BS_OFFLINE=1``) and the files are not on this machine."""


class SourceUnavailableError(DownloadError):
    """The server could not be reached, or answered with an HTTP error."""


def require_network(what: str) -> None:
    """Raise :class:`OfflineError` when ``BS_OFFLINE=1``: ``what`` would need the network."""
    if config.offline():
        raise OfflineError(
            f"{what}: offline ({config.OFFLINE_ENV}=1), so nothing is downloaded. Unset {config.OFFLINE_ENV} "
            f"(or set it to 0) on a machine with internet access to download."
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def path_problem(name: str) -> str | None:
    """Why a relative path from an archive or a registry is unsafe, or None when it stays inside its folder."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in posix.parts:
        return "a '..' component that climbs out of the destination"
    return None


# --------------------------------------------------------------------------- one URL


def fetch_url(url: str, destination: Path, sha256: str | None = None, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``destination`` through ``destination.part``, resuming if possible.

    An interrupted transfer leaves only the ``.part`` file; the next call asks
    the server for the remaining bytes (``Range: bytes=<n>-``) and starts over
    when the server ignores the request. ``destination`` appears (by rename) only
    after the whole file arrived and, when ``sha256`` is given, matched it.
    """
    if urlsplit(url).scheme != "file":
        require_network(url)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = getattr(response, "status", 200) == 206
            expected = response.headers.get("Content-Length")
            expected = int(expected) if expected is not None else None
            received = 0
            with partial.open("ab" if resumed else "wb") as out:
                for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                    out.write(chunk)
                    received += len(chunk)
            if expected is not None and received < expected:
                raise http.client.IncompleteRead(b"", expected - received)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the part file is not a prefix the server knows: start over
            partial.unlink()
            return fetch_url(url, destination, sha256=sha256, timeout=timeout)
        raise SourceUnavailableError(f"{url}: the server answered HTTP {error.code} ({error.reason}).") from error
    except http.client.IncompleteRead as error:
        raise DownloadError(
            f"{url}: the transfer was interrupted ({error.expected} bytes missing). Nothing was "
            f"installed; run the same command again to resume."
        ) from error
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise SourceUnavailableError(
            f"{url}: the source is unreachable or refused the request ({error}). Check the network "
            f"(and any proxy), then run the same command again; partial data is kept for resuming."
        ) from error
    if sha256:
        actual = sha256_of(partial)
        if actual != sha256.lower():
            partial.unlink()
            raise ChecksumMismatchError(
                f"{url}: SHA-256 {actual} does not match the registry's {sha256}. The download was "
                f"corrupted or the source changed; it was deleted. Run again, and if this repeats "
                f"check the source and update bs_lib/data/registry.yaml."
            )
    os.replace(partial, destination)
    return destination


# --------------------------------------------------------------------------- a list of pinned files


@dataclass(frozen=True)
class RemoteFile:
    """One file of a multi-file dataset: where it lands, where it comes from, what it must hash to."""

    path: str  # relative to the dataset folder, with "/" separators
    url: str
    sha256: str


def remote_files(name: str, files: object, base_url: str | None = None,
                 origin: str = "registry") -> tuple[RemoteFile, ...]:
    """Read a registry ``files:`` mapping into :class:`RemoteFile` objects, refusing anything unsafe.

    Each key is a local path relative to the dataset folder; each value is the
    file's SHA-256, or a mapping ``{url, sha256}``. A file without its own
    ``url`` is fetched from ``base_url`` followed by its local path.
    """
    where = f"{origin}: dataset {name!r}"
    if not isinstance(files, dict) or not files:
        raise DownloadError(f"{where}: 'files' must map local paths to a sha256 or to {{url, sha256}}.")
    result = []
    for path, spec in files.items():
        spec = spec if isinstance(spec, dict) else {"sha256": spec}
        url = spec.get("url") or (base_url + str(path) if base_url else None)
        digest = str(spec.get("sha256") or "").lower()
        problem = (path_problem(str(path))
                   or (None if url else "no url (and the entry has no base_url)")
                   or (None if urlsplit(url).scheme in URL_SCHEMES else f"an unsupported URL {url!r}")
                   or (None if _SHA256.fullmatch(digest) else "no valid sha256 (64 hexadecimal digits)"))
        if problem:
            raise DownloadError(f"{where}: file {path!r} has {problem}.")
        result.append(RemoteFile(str(path), url, digest))
    return tuple(result)


def origins(files: Iterable[RemoteFile]) -> str:
    """Where files come from, for messages: ``github.com/owner/repo`` for each repository, in order."""
    found: dict[str, None] = {}
    for item in files:
        parts = urlsplit(item.url)
        found["/".join([parts.netloc, *parts.path.strip("/").split("/")[:2]])] = None
    return ", ".join(found)


def _matches(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_of(path) == sha256


def copy_verified(source: Path, destination: Path, sha256: str) -> Path:
    """Copy ``source`` to ``destination`` (through a ``.part`` file) and check the copy's SHA-256."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    shutil.copyfile(source, partial)
    if sha256_of(partial) != sha256:
        partial.unlink()
        raise ChecksumMismatchError(f"{source}: the copy does not match the registry's SHA-256 {sha256}.")
    os.replace(partial, destination)
    return destination


def _plan(files: tuple[RemoteFile, ...], cache: Path, mirror: Path | None) -> dict[str, list[RemoteFile]]:
    """Sort the files by where each will come from: ``cache``, ``mirror`` or ``network``."""
    plan: dict[str, list[RemoteFile]] = {"cache": [], "mirror": [], "network": []}
    for item in files:
        if _matches(cache / item.path, item.sha256):
            plan["cache"].append(item)
        elif mirror is not None and _matches(mirror / item.path, item.sha256):
            plan["mirror"].append(item)
        else:
            if mirror is not None and (mirror / item.path).is_file():
                warnings.warn(f"{mirror / item.path}: not a byte-identical copy (SHA-256 differs from the "
                              f"registry); fetching the published file instead.", stacklevel=3)
            plan["network"].append(item)
    return plan


def fetch_files(label: str, files: tuple[RemoteFile, ...], staging: Path, cache: Path,
                mirror: Path | None = None) -> dict[str, int]:
    """Put every file at its local path below ``staging``, each checked against its SHA-256.

    A file is taken, in this order, from ``cache`` (complete and checked, left
    by an earlier run that failed later), from ``mirror`` (no network), or from
    its URL with :func:`fetch_url`. Files gather in ``cache`` and move into
    ``staging`` only once all of them arrived, so a failure keeps the finished
    ones for the next run. When some files need the network and downloads are
    switched off, :class:`OfflineError` is raised before anything is copied.
    Returns how many files came from each place.
    """
    plan = _plan(files, cache, mirror)
    if plan["network"]:
        missing = len(plan["network"])
        mirror_note = f"the mirror {mirror} lacks them" if mirror is not None else "no local mirror holds them"
        require_network(f"{label}: {missing} of {len(files)} file(s) must come from {origins(plan['network'])} "
                        f"and {mirror_note}")
    for item in plan["mirror"]:
        copy_verified(mirror / item.path, cache / item.path, item.sha256)
    for item in plan["network"]:
        fetch_url(item.url, cache / item.path, sha256=item.sha256)
    for item in files:
        (staging / item.path).parent.mkdir(parents=True, exist_ok=True)
        os.replace(cache / item.path, staging / item.path)
    return {where: len(items) for where, items in plan.items()}
