"""Finding images on disk, pairing them by file name, and :class:`PairedFolder`, the dataset most layouts are.

Every dataset of the course yields the same sample, a dict::

    {"cxr": tensor (1, H, W), "soft": tensor (1, H, W), "masks": {...},
     "id": "JPCLN001", "patient": "JPCLN001", "meta": {...}}

with float32 images in [0, 1] and conventional polarity (bone bright), read by
:func:`bs_lib.io.read_image`. Most published paired sets are two folders whose
files share names (``CXR/0.png`` and ``BS/0.png``): :func:`match_pairs` pairs
them, and says what is wrong when they do not pair. A folder whose layout is not
documented is searched (:func:`find_folder`, :func:`discover_pair_folders`), and
a missing dataset raises :class:`DatasetNotFoundError` whose message says where
to get it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bs_lib import config
from bs_lib.datasets.splits import natural_key, select_split
from bs_lib.io import SUPPORTED_SUFFIXES, read_pair, resize

IMAGE_SUFFIXES = tuple(s for s in SUPPORTED_SUFFIXES if s != ".img")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not where it should be; the message says how to get it."""


def how_to_get(name: str) -> str:
    """Instructions for obtaining a registered dataset (from ``bs_lib/data/registry.yaml``)."""
    try:
        from bs_lib.download import get_entry

        return get_entry(name).how_to_get()
    except Exception:  # the registry is unavailable: point at the cards instead
        return f"See datasets/{name}.md in the course repository."


def missing_error(name: str, root: Path, what: str) -> DatasetNotFoundError:
    """The error for a dataset ``name`` that is not usable at ``root``: what is wrong, then how to get it."""
    return DatasetNotFoundError(f"{name}: {what} ({root}). {how_to_get(name)}")


def show_tree(root: Path, limit: int = 12) -> str:
    """A short listing of what a folder holds, for error messages."""
    if not root.is_dir():
        return "the folder does not exist"
    entries = sorted(root.rglob("*"))
    shown = [str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in entries[:limit]]
    more = f" … and {len(entries) - limit} more" if len(entries) > limit else ""
    return "found: " + (", ".join(shown) + more if shown else "nothing (empty folder)")


# --------------------------------------------------------------------------- finding images


def list_images(folder: Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> dict[str, Path]:
    """Image files of one folder keyed by file stem (``0.png`` → ``"0"``)."""
    images: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes and not path.name.startswith("."):
            if path.stem in images:
                raise ValueError(f"{folder}: two images share the name {path.stem!r} "
                                 f"({images[path.stem].name}, {path.name}); keep one.")
            images[path.stem] = path
    return images


def match_pairs(cxr_folder: Path, target_folder: Path, unpaired: str = "error") -> list[tuple[str, Path, Path]]:
    """Pair radiographs and targets by identical file stem.

    ``unpaired`` decides what happens to a file without a partner: ``"error"``
    (default: a half-copied dataset is a mistake worth seeing) or ``"skip"``.
    """
    for folder in (cxr_folder, target_folder):
        if not folder.is_dir():
            raise DatasetNotFoundError(f"{folder}: folder not found; {show_tree(folder.parent)}.")
    cxrs, targets = list_images(cxr_folder), list_images(target_folder)
    only_cxr, only_target = sorted(set(cxrs) - set(targets)), sorted(set(targets) - set(cxrs))
    if (only_cxr or only_target) and unpaired == "error":
        raise ValueError(
            f"{cxr_folder.parent}: {len(only_cxr)} radiograph(s) without a target in {target_folder.name}/ "
            f"(e.g. {only_cxr[:3]}) and {len(only_target)} target(s) without a radiograph in "
            f"{cxr_folder.name}/ (e.g. {only_target[:3]}). Pairs are matched by identical file name; "
            f"fix the names or pass unpaired='skip'."
        )
    stems = sorted(set(cxrs) & set(targets), key=natural_key)
    if not stems:
        raise DatasetNotFoundError(
            f"{cxr_folder.parent}: no pairs: {cxr_folder.name}/ has {len(cxrs)} image(s), "
            f"{target_folder.name}/ has {len(targets)}, and no file name occurs in both."
        )
    return [(stem, cxrs[stem], targets[stem]) for stem in stems]


def to_tensor(image: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))


# --------------------------------------------------------------------------- paired folders


class PairedFolder:
    """Radiograph / target pairs in two sub-folders, matched by file name.

    Covers most published layouts: ``CXR/`` + ``BS/`` (SZCH-X-Rays, BS-LDM
    samples), ``authentic/`` + ``des/`` (Gusarev DES), ``JSRT/JSRT`` +
    ``BSE_JSRT/BSE_JSRT`` (BSE-JSRT on Kaggle).

    Parameters
    ----------
    root: folder holding the two sub-folders.
    cxr_dir, target_dir: their names (relative paths allowed).
    split: ``"all"`` or a split name of ``split_file`` (``"train"``, ``"val"``, ``"test"``).
    split_file: a JSON split written by :func:`save_split` (patients per split).
    size: resample both images to ``size × size`` (None keeps the native size).
    transform: a callable applied to each finished sample.
    seed: kept for API symmetry (random transforms may read ``dataset.seed``).
    patient_of: maps a file stem to its patient id (default: the stem itself).
    unpaired: ``"error"`` or ``"skip"`` for files without a partner.
    resize_mismatch: resample a target whose size differs from its radiograph (with a warning).

    Resized pairs up to :data:`CACHED_UP_TO` pixels a side are kept in memory
    once read: decoding two 2021² PNGs costs about a third of a second, which
    would otherwise be paid again at every epoch and starve a GPU (600 pairs at
    256² hold about 300 MB).
    """

    name = "paired-folder"
    CACHED_UP_TO = 512

    def __init__(
        self,
        root: str | Path,
        cxr_dir: str = "CXR",
        target_dir: str = "BS",
        split: str = "all",
        split_file: str | Path | None = None,
        size: int | None = None,
        transform: Callable[[dict], dict] | None = None,
        seed: int = 0,
        patient_of: Callable[[str], str] | None = None,
        unpaired: str = "error",
        resize_mismatch: bool = False,
    ):
        self.root = Path(root)
        self.size, self.transform, self.seed = size, transform, seed
        self.resize_mismatch = resize_mismatch
        self.patient_of = patient_of or (lambda stem: stem)
        pairs = match_pairs(self.root / cxr_dir, self.root / target_dir, unpaired=unpaired)
        self.split = split
        self.pairs = select_split(pairs, self.patient_of, split, split_file, self.name)
        self._cache: dict[int, tuple] = {}

    @property
    def ids(self) -> list[str]:
        return [stem for stem, _, _ in self.pairs]

    @property
    def patients(self) -> list[str]:
        return [self.patient_of(stem) for stem in self.ids]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        stem = self.pairs[index][0]
        cxr, soft, meta = self._cache.get(index) or self._load(index)
        sample = {"cxr": to_tensor(cxr.copy()), "soft": to_tensor(soft.copy()), "masks": {}, "id": stem,
                  "patient": self.patient_of(stem), "meta": dict(meta)}  # copies: the cache stays intact
        return self.transform(sample) if self.transform else sample

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Read (and resize) pair ``index``; small sizes are kept for the next epoch."""
        _, cxr_path, target_path = self.pairs[index]
        cxr, soft, meta = self._read(cxr_path, target_path)
        if self.size is not None:
            cxr, soft = resize(cxr, (self.size, self.size)), resize(soft, (self.size, self.size))
            if self.size <= self.CACHED_UP_TO:
                self._cache[index] = (cxr, soft, meta)
        return cxr, soft, meta

    def _read(self, cxr_path: Path, target_path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Both images of one pair at their native size (subclasses with quirks override this)."""
        return read_pair(cxr_path, target_path, resize_mismatch=self.resize_mismatch)

    def __repr__(self) -> str:
        size = f"{self.size}²" if self.size else "native size"
        return f"{type(self).__name__}({len(self)} pairs, split={self.split!r}, {size}, root={self.root})"


class RadiographFolder:
    """Unlabelled radiographs: every image directly in one folder, samples with ``cxr`` only.

    What domain adaptation adapts to (``data_args.target: FOLDER``): a user's
    own radiographs, no soft-tissue images needed. Any format
    :func:`bs_lib.io.read_image` reads (PNG, JPEG, TIFF, DICOM), bone bright;
    ``negative=True`` when they are stored bone dark. A file that cannot be read
    is an error naming it.
    """

    def __init__(self, folder: str | Path, size: int | None = None, negative: bool = False):
        self.root = Path(folder).expanduser()
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"{self.root}: no such folder of radiographs.")
        self.files = list(list_images(self.root).values())
        if not self.files:
            raise DatasetNotFoundError(f"{self.root} holds no image ({', '.join(IMAGE_SUFFIXES)}): "
                                       f"{show_tree(self.root)}.")
        self.size, self.negative = size, negative
        self.domain = f"unlabelled radiographs in {self.root}"

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from bs_lib.io import read_image

        image, meta = read_image(self.files[index], invert=True if self.negative else None)
        if self.size is not None:
            image = resize(image, (self.size, self.size))
        stem = self.files[index].stem
        return {"cxr": to_tensor(image), "masks": {}, "id": stem, "patient": stem, "meta": meta}


# --------------------------------------------------------------------------- where a dataset lives, and its layout


def default_root(name: str, root: str | Path | None) -> Path:
    if root is not None:
        return Path(root)
    try:
        from bs_lib.download import get_entry

        return get_entry(name).path()
    except Exception:
        return config.data_dir() / name


def find_folder(root: Path, names: Iterable[str], exclude: Iterable[str] = ()) -> Path | None:
    """The deepest folder below ``root`` named one of ``names`` that directly holds images."""
    wanted, banned = {n.lower() for n in names}, {n.lower() for n in exclude}
    hits = []
    for folder in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        parts = {part.lower() for part in folder.relative_to(root).parts}
        if folder.name.lower() in wanted and not parts & banned and has_images(folder):
            hits.append(folder)
    return max(hits, key=lambda p: len(p.parts)) if hits else None


def has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir() if p.is_file())



def discover_pair_folders(root: Path) -> tuple[Path, Path]:
    """Find the radiograph and target folders of an unknown layout.

    Looks for the two image folders below ``root`` that share the most file
    names; the one whose name suggests suppression (``bse``, ``bs``, ``soft``,
    ``suppress``, ``target``, ``des``) is the target. Fails with what it found.
    """
    folders = [p for p in [root, *sorted(root.rglob("*"))] if p.is_dir() and has_images(p)]
    stems = {folder: set(list_images(folder)) for folder in folders}
    best, overlap = None, 0
    for i, first in enumerate(folders):
        for second in folders[i + 1:]:
            shared = len(stems[first] & stems[second])
            if shared > overlap:
                best, overlap = (first, second), shared
    if best is None:
        listing = ", ".join(f"{p.relative_to(root)}/ ({len(stems[p])})" for p in folders) or "none"
        raise DatasetNotFoundError(
            f"{root}: no two image folders share file names, so no pairs can be formed. "
            f"Image folders found: {listing}."
        )
    target_words = re.compile(r"bse|^bs$|soft|suppress|target|des|tissue", re.IGNORECASE)
    first, second = best
    if target_words.search(first.name) and not target_words.search(second.name):
        first, second = second, first
    elif not target_words.search(second.name):
        raise DatasetNotFoundError(
            f"{root}: {first.relative_to(root)}/ and {second.relative_to(root)}/ share {overlap} file names, "
            f"but neither name says which holds the suppressed images. Use PairedFolder(root, cxr_dir, "
            f"target_dir) to name them."
        )
    return first, second
