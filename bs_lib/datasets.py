"""Datasets with one sample shape, and patient-wise splits that cannot leak.

Every dataset of the course yields the same sample, a dict::

    {"cxr": tensor (1, H, W), "soft": tensor (1, H, W), "masks": {...},
     "id": "JPCLN001", "patient": "JPCLN001", "meta": {...}}

with float32 images in [0, 1] and conventional polarity (bone bright), read by
:func:`bs_lib.io.read_image`. Constructors follow torchxrayvision:
``Dataset(root=None, split=..., size=None, transform=None, seed=0)``; ``root``
defaults to the dataset's folder in the data directory, and a missing dataset
raises :class:`DatasetNotFoundError` whose message says exactly how to get it.

Splitting is where paired bone-suppression data most often cheats. An
augmented collection holds many copies of one patient; a random split of
*images* puts copies of the same chest in training and test, and a model that
memorises looks brilliant. So splits here are made of **patients**
(:func:`make_patient_split`), seeded, saved to a JSON file
(:func:`save_split`) that every method reads, and checked
(:func:`check_no_patient_overlap`).

:func:`get_dataset` switches between the phantom and real data with one name,
so a notebook's ``PROFILE`` decides which one it trains on. :func:`real_pairs`
is the notebooks' one call for the small real test sets (``real-pairs``,
``gusarev-des``): it finds or downloads them, and otherwise says in one line why
they are missing and returns None.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bs_lib import config
from bs_lib.io import SUPPORTED_SUFFIXES, read_image, read_pair, resize

IMAGE_SUFFIXES = tuple(s for s in SUPPORTED_SUFFIXES if s != ".img")
SPLIT_NAMES = ("train", "val", "test")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not where it should be; the message says how to get it."""


class SplitLeakageError(ValueError):
    """A patient appears in more than one split."""


def how_to_get(name: str) -> str:
    """Instructions for obtaining a registered dataset (from ``bs_lib/data/registry.yaml``)."""
    try:
        from bs_lib.download import get_entry

        return get_entry(name).how_to_get()
    except Exception:  # the registry is unavailable: point at the cards instead
        return f"See datasets/{name}.md in the course repository."


def _missing(name: str, root: Path, what: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(f"{name}: {what} ({root}). {how_to_get(name)}")


def _show_tree(root: Path, limit: int = 12) -> str:
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
            raise DatasetNotFoundError(f"{folder}: folder not found; {_show_tree(folder.parent)}.")
    cxrs, targets = list_images(cxr_folder), list_images(target_folder)
    only_cxr, only_target = sorted(set(cxrs) - set(targets)), sorted(set(targets) - set(cxrs))
    if (only_cxr or only_target) and unpaired == "error":
        raise ValueError(
            f"{cxr_folder.parent}: {len(only_cxr)} radiograph(s) without a target in {target_folder.name}/ "
            f"(e.g. {only_cxr[:3]}) and {len(only_target)} target(s) without a radiograph in "
            f"{cxr_folder.name}/ (e.g. {only_target[:3]}). Pairs are matched by identical file name; "
            f"fix the names or pass unpaired='skip'."
        )
    stems = sorted(set(cxrs) & set(targets), key=_natural_key)
    if not stems:
        raise DatasetNotFoundError(
            f"{cxr_folder.parent}: no pairs: {cxr_folder.name}/ has {len(cxrs)} image(s), "
            f"{target_folder.name}/ has {len(targets)}, and no file name occurs in both."
        )
    return [(stem, cxrs[stem], targets[stem]) for stem in stems]


def _natural_key(text: str) -> list:
    """Sort ``2`` before ``10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _to_tensor(image: np.ndarray):
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
        self.pairs = _select_split(pairs, self.patient_of, split, split_file)
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
        sample = {"cxr": _to_tensor(cxr.copy()), "soft": _to_tensor(soft.copy()), "masks": {}, "id": stem,
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


def _select_split(pairs: list, patient_of: Callable[[str], str], split: str, split_file) -> list:
    if split == "all":
        return pairs
    if split_file is None:
        raise ValueError(f"split={split!r} needs a split_file (see make_patient_split / save_split), "
                         f"or use split='all'.")
    patients = set(load_split(split_file)["splits"].get(split, []))
    if not patients:
        raise ValueError(f"{split_file}: has no patients for split {split!r}.")
    return [pair for pair in pairs if patient_of(pair[0]) in patients]


# --------------------------------------------------------------------------- named datasets


def _default_root(name: str, root: str | Path | None) -> Path:
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
        if folder.name.lower() in wanted and not parts & banned and _has_images(folder):
            hits.append(folder)
    return max(hits, key=lambda p: len(p.parts)) if hits else None


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir() if p.is_file())


class BSEJSRT(PairedFolder):
    """JSRT radiographs and their BSE-JSRT bone-suppressed targets (Kaggle ``hmchuong``).

    The targets are *algorithmic* soft-tissue estimates, not dual-energy images.
    Only the non-augmented pairs (``JSRT/JSRT`` + ``BSE_JSRT/BSE_JSRT``) are served;
    the ``augmented/`` copies leak patients across splits and are left out
    (see :func:`augmented_pairs` to add them to a training split safely).
    Radiographs without a target are skipped.
    """

    name = "bse-jsrt"

    def __init__(self, root=None, split="all", split_file=None, size=None, transform=None, seed=0, **kwargs):
        root = _default_root(self.name, root)
        if not root.is_dir():
            raise _missing(self.name, root, "the dataset folder does not exist")
        cxr = find_folder(root, ["JSRT"], exclude=["augmented"])
        target = find_folder(root, ["BSE_JSRT"], exclude=["augmented"])
        if cxr is None or target is None:
            raise _missing(self.name, root, f"no JSRT/ and BSE_JSRT/ image folders ({_show_tree(root)})")
        kwargs.setdefault("unpaired", "skip")
        super().__init__(root, cxr.relative_to(root), target.relative_to(root), split=split,
                         split_file=split_file, size=size, transform=transform, seed=seed, **kwargs)


def augmented_pairs(root: Path, patients: Iterable[str]) -> list[tuple[str, Path, Path]]:
    """Augmented BSE-JSRT pairs that belong to ``patients`` (e.g. the training split).

    Each augmented file must name its patient as a prefix of its stem
    (``JPCLN001_3.png``); otherwise the set cannot be used without leakage and
    an error says so, with examples of the names found.
    """
    source = find_folder(root, ["source"])
    target = find_folder(root, ["target"])
    if source is None or target is None:
        raise _missing("bse-jsrt", root, f"no augmented source/ and target/ folders ({_show_tree(root)})")
    pairs = match_pairs(source, target, unpaired="skip")
    known = sorted(set(patients), key=len, reverse=True)
    kept = [pair for pair in pairs if any(pair[0].startswith(patient) for patient in known)]
    if pairs and not kept:
        raise ValueError(
            f"{source}: augmented file names (e.g. {[s for s, _, _ in pairs[:3]]}) do not name their patient, "
            f"so they cannot be assigned to a split without leaking test patients into training. "
            f"Train on the non-augmented pairs only."
        )
    return kept


class SZCHXRays(PairedFolder):
    """SZCH-X-Rays: 741 real dual-energy radiograph / soft-tissue pairs (``CXR/`` + ``BS/``).

    ``split`` is ``"train"``, ``"val"``, ``"test"`` (from the official split text
    files when present, or from ``split_file``) or ``"all"``.
    """

    name = "szch-x-rays"

    def __init__(self, root=None, split="all", split_file=None, size=None, transform=None, seed=0, **kwargs):
        root = _default_root(self.name, root)
        if not root.is_dir():
            raise _missing(self.name, root, "the dataset folder does not exist")
        cxr = find_folder(root, ["CXR"])
        if cxr is None or not (cxr.parent / "BS").is_dir():
            raise _missing(self.name, root, f"no CXR/ and BS/ image folders ({_show_tree(root)})")
        base = cxr.parent
        if split != "all" and split_file is None:
            split_file = official_szch_split(root, base)
        super().__init__(base, "CXR", "BS", split=split, split_file=split_file, size=size,
                         transform=transform, seed=seed, **kwargs)


def official_szch_split(root: Path, images: Path) -> Path:
    """Turn the official ``*train*.txt`` / ``*val*.txt`` / ``*test*.txt`` lists into a split file.

    Each list holds one file name per line. The JSON split is written next to
    the data (``<root>/split-official.json``) and reused.
    """
    out = root / "split-official.json"
    if out.is_file():
        return out
    lists = {name: sorted(root.rglob(f"*{key}*.txt")) for name, key in
             (("train", "train"), ("val", "val"), ("test", "test"))}
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*.txt"))
    if not all(lists.values()):
        raise DatasetNotFoundError(
            f"szch-x-rays: the official split lists (*train*.txt, *val*.txt, *test*.txt) were not all found "
            f"under {root}; text files present: {found or 'none'}. Use split='all' with make_patient_split."
        )
    splits = {name: [Path(line.strip()).stem for line in paths[0].read_text().splitlines() if line.strip()]
              for name, paths in lists.items()}
    save_split(out, splits, dataset="szch-x-rays", seed=None, note="official split lists")
    return out


class JSRTBoneMasks:
    """JSRT originals and "bone masks" (Kaggle ``yoctoman``), read through its index CSV.

    The index (``idx_JSRT_GOOD_MASKS_SHORT_KAGGLE.csv`` or any CSV whose first
    two columns are image paths) pairs a radiograph with a bone image. Whether
    that image is a soft-tissue estimate or a binary mask is not documented, so
    samples carry it as ``masks["bone"]`` and have no ``soft``.
    """

    name = "jsrt-bone-masks"

    def __init__(self, root=None, size=None, transform=None, seed=0):
        self.root = _default_root(self.name, root)
        if not self.root.is_dir():
            raise _missing(self.name, self.root, "the dataset folder does not exist")
        self.size, self.transform, self.seed = size, transform, seed
        self.pairs = self._pairs_from_index()

    def _pairs_from_index(self) -> list[tuple[str, Path, Path]]:
        for index in sorted(self.root.rglob("*.csv")):
            pairs = []
            with index.open(newline="") as handle:
                for row in csv.reader(handle):
                    if len(row) < 2 or not row[0].strip():
                        continue
                    cxr, mask = index.parent / row[0].strip(), index.parent / row[1].strip()
                    if not cxr.is_file():
                        cxr, mask = self.root / row[0].strip(), self.root / row[1].strip()
                    if cxr.is_file() and mask.is_file():
                        pairs.append((cxr.stem, cxr, mask))
            if pairs:
                return pairs
        raise _missing(self.name, self.root, f"no index CSV listing image pairs ({_show_tree(self.root)})")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        stem, cxr_path, mask_path = self.pairs[index]
        cxr, mask, meta = read_pair(cxr_path, mask_path, resize_mismatch=True)
        if self.size is not None:
            cxr, mask = resize(cxr, (self.size, self.size)), resize(mask, (self.size, self.size))
        sample = {"cxr": _to_tensor(cxr), "masks": {"bone": _to_tensor(mask)}, "id": stem,
                  "patient": stem, "meta": meta}
        return self.transform(sample) if self.transform else sample


def discover_pair_folders(root: Path) -> tuple[Path, Path]:
    """Find the radiograph and target folders of an unknown layout.

    Looks for the two image folders below ``root`` that share the most file
    names; the one whose name suggests suppression (``bse``, ``bs``, ``soft``,
    ``suppress``, ``target``, ``des``) is the target. Fails with what it found.
    """
    folders = [p for p in [root, *sorted(root.rglob("*"))] if p.is_dir() and _has_images(p)]
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


class JSRTBSEBaidu(PairedFolder):
    """The 241 JSRT / bone-suppressed pairs from Baidu AI Studio (dataset 234557), downloaded by hand.

    The archive's layout is not documented; :func:`discover_pair_folders` finds it.
    """

    name = "jsrt-bse-baidu"

    def __init__(self, root=None, split="all", split_file=None, size=None, transform=None, seed=0, **kwargs):
        root = _default_root(self.name, root)
        if not root.is_dir():
            raise _missing(self.name, root, "the dataset folder does not exist")
        cxr, target = discover_pair_folders(root)
        kwargs.setdefault("unpaired", "skip")
        super().__init__(root, cxr.relative_to(root), target.relative_to(root), split=split,
                         split_file=split_file, size=size, transform=transform, seed=seed, **kwargs)


class JSRT:
    """The raw JSRT radiographs (``*.IMG``, 2048², 12-bit), unpaired: samples have ``cxr`` only."""

    name = "jsrt"

    def __init__(self, root=None, size=None, transform=None, seed=0):
        self.root = _default_root(self.name, root)
        found = self.root.rglob("*") if self.root.is_dir() else []
        self.files = sorted(p for p in found if p.suffix.lower() == ".img")
        if not self.files:
            raise _missing(self.name, self.root, f"no .IMG files ({_show_tree(self.root)})")
        self.size, self.transform, self.seed = size, transform, seed

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, meta = read_image(self.files[index])
        if self.size is not None:
            image = resize(image, (self.size, self.size))
        stem = self.files[index].stem
        sample = {"cxr": _to_tensor(image), "masks": {}, "id": stem, "patient": stem, "meta": meta}
        return self.transform(sample) if self.transform else sample


def local_copy(name: str) -> Path | None:
    """Where the files of a downloadable dataset already are on this machine, or None.

    Its local mirror first (for ``real-pairs``: :func:`bs_lib.config.real_pairs_dir`),
    else its folder in the data directory when it holds anything.
    """
    from bs_lib.download import DownloadError, get_entry

    try:
        entry = get_entry(name)
    except DownloadError:  # no registry: only the mirror of the sample pairs is known
        return config.real_pairs_dir() if name == "real-pairs" else None
    folder = entry.path()
    return entry.mirror() or (folder if folder.is_dir() and any(folder.iterdir()) else None)


class RealSamplePairs:
    """The six real SZCH sample pairs (``szch-bsldm/`` and ``szch-bsdiff/``, each ``CXR/`` + ``BS/``).

    Ids are ``"<group>/<stem>"`` (``"szch-bsldm/0"``); every pair is its own patient, and
    ``meta["source"]`` names its group. ``root`` defaults to :func:`local_copy`.
    """

    name = "real-pairs"

    def __init__(self, root=None, size=None, transform=None, seed=0):
        root = Path(root) if root is not None else local_copy(self.name)
        if root is None or not root.is_dir():
            raise _missing(self.name, root or _default_root(self.name, None), "the sample pairs are not present")
        groups = sorted(p for p in root.iterdir() if (p / "CXR").is_dir() and (p / "BS").is_dir())
        if not groups:
            raise _missing(self.name, root, f"no <group>/CXR + <group>/BS folders ({_show_tree(root)})")
        self.root, self.transform = root, transform
        self.parts = [(g.name, PairedFolder(g, size=size, seed=seed)) for g in groups]
        self.index = [(group, i) for group, part in self.parts for i in range(len(part))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        group, inner = self.index[index]
        sample = dict(self.parts)[group][inner]
        sample["id"] = sample["patient"] = f"{group}/{sample['id']}"
        sample["meta"]["source"] = group
        return self.transform(sample) if self.transform else sample

    def __repr__(self) -> str:
        return f"RealSamplePairs({len(self)} pairs, root={self.root})"


class GusarevDES(PairedFolder):
    """Gusarev's dual-energy pairs: radiographs in ``authentic/``, soft-tissue images in ``des/`` (JPEG).

    Two quirks of these files are handled openly, never silently:

    * some files are RGB; :func:`bs_lib.io.read_image` turns them into grey
      (ITU-R 601 luma) and records ``converted_from`` in the image's metadata;
    * in some pairs the radiograph and its target differ by a few pixels. Both
      images are then **cropped to their common size, centred**
      (:func:`crop_to_common_size`): no pixel is interpolated, at most a few
      border rows or columns are dropped, and ``meta["crop"]`` records the cut.

    The constructor prints one line when it finds either quirk. The polarity is
    assumed conventional (bone bright, like every dual-energy display); each
    image is checked with :func:`looks_conventional`, a warning names any that
    fails, and ``meta["polarity_check"]`` keeps the result.
    """

    name = "gusarev-des"

    def __init__(self, root=None, split="all", split_file=None, size=None, transform=None, seed=0, **kwargs):
        root = _default_root(self.name, root)
        cxr = find_folder(root, ["authentic"]) if root.is_dir() else None
        if cxr is None or not (cxr.parent / "des").is_dir():
            raise _missing(self.name, root, f"no authentic/ and des/ image folders ({_show_tree(root)})")
        kwargs.setdefault("unpaired", "skip")  # 35 images (the Drive folder) cannot all be pairs
        super().__init__(cxr.parent, "authentic", "des", split=split, split_file=split_file, size=size,
                         transform=transform, seed=seed, **kwargs)
        summary = self.report()
        if summary:
            print(summary)

    def report(self) -> str:
        """One line on what loading changes (RGB files, pairs of different sizes), or "" when nothing."""
        from PIL import Image

        colour, uneven = 0, 0
        for _, cxr_path, target_path in self.pairs:
            sizes = []
            for path in (cxr_path, target_path):
                with Image.open(path) as image:  # reads the header only
                    colour += image.mode in ("RGB", "P")  # what read_image turns into grey
                    sizes.append(image.size)
            uneven += sizes[0] != sizes[1]
        notes = [f"{colour} colour file(s) converted to grey (ITU-R 601 luma)"] if colour else []
        if uneven:
            notes.append(f"{uneven} of {len(self)} pairs differ in size: both images cropped to their common "
                         f"size, centred, no pixel interpolated (sample['meta']['crop'])")
        return f"{self.name}: " + "; ".join(notes) + "." if notes else ""

    def _read(self, cxr_path: Path, target_path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        with warnings.catch_warnings():  # already reported once, by report()
            warnings.filterwarnings("ignore", message=".*colour image converted to grey")
            cxr, cxr_meta = read_image(cxr_path)
            soft, soft_meta = read_image(target_path)
        cxr, soft, crop = crop_to_common_size(cxr, soft)
        checks = {"cxr": looks_conventional(cxr), "soft": looks_conventional(soft)}
        for key, path in (("cxr", cxr_path), ("soft", target_path)):
            if not checks[key]:
                warnings.warn(f"{path}: the mediastinum is darker than the lungs, so the image may be a negative "
                              f"(bone dark); look at it before using it.", stacklevel=3)
        meta = {"cxr": cxr_meta, "target": soft_meta, "resized_target": False, "crop": crop,
                "polarity_check": {key: "conventional" if ok else "inverted?" for key, ok in checks.items()},
                "source": self.name}
        return cxr, soft, meta


def crop_to_common_size(cxr: np.ndarray, soft: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict | None]:
    """Crop two ``(1, H, W)`` images to their common size, centred; no pixel is interpolated.

    An image ``d`` pixels too tall loses ``d // 2`` rows at the top and the rest
    at the bottom (the same for columns). Returns the two images and what was cut
    (None when the sizes already agree): the common size, and for each image the
    ``(top, left)`` offset of the kept window.
    """
    if cxr.shape == soft.shape:
        return cxr, soft, None
    height, width = min(cxr.shape[1], soft.shape[1]), min(cxr.shape[2], soft.shape[2])
    offsets = {}
    for key, image in (("cxr", cxr), ("soft", soft)):
        offsets[key] = ((image.shape[1] - height) // 2, (image.shape[2] - width) // 2)
    (ct, cl), (st, sl) = offsets["cxr"], offsets["soft"]
    crop = {"rule": "centred crop to the common size", "size": (height, width),
            "cxr_offset": offsets["cxr"], "soft_offset": offsets["soft"]}
    return cxr[:, ct:ct + height, cl:cl + width], soft[:, st:st + height, sl:sl + width], crop


def looks_conventional(image: np.ndarray) -> bool:
    """True when a PA chest image looks like conventional polarity (bone bright, lungs dark).

    The heuristic compares two regions of a PA chest radiograph or soft-tissue
    image: the central strip (spine, mediastinum, heart: dense, so bright) and
    the two lung fields (air, so dark). A negative image reverses the order.
    It assumes a roughly centred PA view; on the six SZCH pairs the strip is
    brighter by 0.25 or more.
    """
    picture = np.asarray(image, dtype=np.float64).reshape(image.shape[-2:])
    height, width = picture.shape
    rows = slice(int(0.3 * height), int(0.6 * height))
    centre = picture[rows, int(0.45 * width):int(0.55 * width)].mean()
    lungs = (picture[rows, int(0.15 * width):int(0.35 * width)].mean()
             + picture[rows, int(0.65 * width):int(0.85 * width)].mean()) / 2
    return bool(centre > lungs)


# --------------------------------------------------------------------------- one switch


DATASETS: dict[str, Callable[..., Any]] = {
    "bse-jsrt": BSEJSRT,
    "szch-x-rays": SZCHXRays,
    "jsrt-bse-baidu": JSRTBSEBaidu,
    "jsrt-bone-masks": JSRTBoneMasks,
    "jsrt": JSRT,
    "real-pairs": RealSamplePairs,
    "gusarev-des": GusarevDES,
}


def get_dataset(name: str, split: str = "train", size: int | None = None, num_images: int | None = None,
                seed: int = 0, transform=None, **kwargs):
    """One call for every dataset: ``get_dataset(run.profile.dataset, size=run.profile.image_size)``.

    ``"phantom"`` builds :class:`bs_lib.phantom.PhantomDataset`; the other names
    are the real datasets of :data:`DATASETS`. ``num_images`` keeps the first
    images only (a quick look at a big dataset).
    """
    if name == "phantom":
        from bs_lib.phantom import PhantomDataset

        return PhantomDataset(size=size or 64, split=split, num_images=num_images, seed=seed,
                              transform=transform, **kwargs)
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose 'phantom' or one of {', '.join(DATASETS)}.")
    factory = DATASETS[name]
    if name in ("bse-jsrt", "szch-x-rays", "jsrt-bse-baidu"):
        kwargs["split"] = split
    dataset = factory(size=size, transform=transform, seed=seed, **kwargs)
    if num_images is not None:
        import torch.utils.data

        return torch.utils.data.Subset(dataset, range(min(num_images, len(dataset))))
    return dataset


def real_pairs(name: str = "real-pairs", size: int | None = None, download: bool = True, **kwargs):
    """The small real test set ``name`` (``"real-pairs"`` or ``"gusarev-des"``), or None when it cannot be had.

    The one call for notebooks. It uses the copy already on this machine (the
    local mirror, or the folder in the data directory); otherwise, when
    ``download`` is true, it downloads the public, checksummed files (no account
    needed) on first use. When neither works it prints **one** line saying why
    (offline, source unreachable, ...) and how to get them, and returns None: a
    missing network never raises. ``kwargs`` go to the dataset class.
    """
    from bs_lib import download as dl

    if name not in ("real-pairs", "gusarev-des"):
        raise ValueError(f"real_pairs: {name!r} is not a downloadable real-pair set; use 'real-pairs' or "
                         f"'gusarev-des' (or get_dataset for the others).")
    root, reason = local_copy(name), "not downloaded (download=False)"
    if root is None and download:
        try:
            root = dl.download(name)
            print(f"{name}: downloaded into {root}")
        except dl.DownloadError as error:
            reason = _why_not_downloaded(error)
    if root is not None:
        try:
            return DATASETS[name](root=root, size=size, **kwargs)
        except DatasetNotFoundError:
            reason = f"{root} holds no usable pairs"
    print(f"{name}: the real pairs are not on this machine, and were not downloaded: {reason}. "
          f"Get them with `python -m bs_lib download {name}` (public files, no account needed).")
    return None


def _why_not_downloaded(error: Exception) -> str:
    """A few words for :func:`real_pairs`' one line."""
    from bs_lib import download as dl

    if isinstance(error, dl.OfflineError):
        return f"offline ({config.OFFLINE_ENV}=1)"
    if isinstance(error, dl.SourceUnavailableError):
        code = getattr(error.__cause__, "code", None)  # urllib's HTTPError carries the status
        if code:
            return f"the download source answered HTTP {code}"
        return "the download source is unreachable (no network?)"
    if isinstance(error, dl.ChecksumMismatchError):
        return "a downloaded file did not match its pinned SHA-256"
    return f"the download failed ({type(error).__name__}: {str(error).split('. ')[0]})"


_REPORTED_MISSING: set[str] = set()


def _say_missing(name: str, why: str = "is not on this machine") -> None:
    """One line, once per dataset and process: the phantom stands in, and how to get the real data."""
    if name not in _REPORTED_MISSING:
        _REPORTED_MISSING.add(name)
        print(f"{name} {why}: the synthetic phantom stands in for it. {how_to_get(name)}")


def usable_dataset(name: str) -> str:
    """``name`` when that dataset is on this machine, else ``"phantom"`` (saying so, once, with how to get it).

    What a notebook passes as ``data`` to a training config, so that a GPU
    profile runs without any download: ``DATA = usable_dataset(run.profile.dataset)``.
    """
    if name == "phantom" or local_copy(name) is not None:
        return name
    _say_missing(name)
    return "phantom"


def profile_dataset(profile, split: str = "train", seed: int = 0, **kwargs):
    """The dataset a profile asks for, or the phantom (saying so once) when that dataset is not on this machine.

    ``profile`` is a :class:`bs_lib.config.Profile` (``run.profile`` in a notebook).
    """
    name = usable_dataset(profile.dataset)
    try:
        return get_dataset(name, split=split, size=profile.image_size, num_images=profile.num_images,
                           seed=seed, **kwargs)
    except DatasetNotFoundError as missing:
        if name == "phantom":
            raise
        _say_missing(name, f"is incomplete ({str(missing).splitlines()[0]})")
        return get_dataset("phantom", split=split, size=profile.image_size, num_images=profile.num_images,
                           seed=seed, **kwargs)


# --------------------------------------------------------------------------- splits


def split_counts(total: int, fractions: Sequence[float]) -> list[int]:
    """Integer counts that sum to ``total`` and follow ``fractions`` (largest remainders first)."""
    if abs(sum(fractions) - 1.0) > 1e-6 or any(f < 0 for f in fractions):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {list(fractions)}")
    exact = [total * f for f in fractions]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def make_patient_split(
    patients: Iterable[str],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    counts: Sequence[int] | None = None,
    seed: int = 0,
    names: Sequence[str] = SPLIT_NAMES,
) -> dict[str, list[str]]:
    """Assign whole patients to train / val / test with a seeded shuffle.

    ``patients`` may repeat (one entry per image); each distinct patient lands in
    exactly one split, so every image of a patient follows it. ``counts`` (e.g.
    192 / 24 / 25 for BSE-JSRT's 241 pairs) overrides ``fractions``.
    """
    unique = sorted(set(patients), key=_natural_key)
    if not unique:
        raise ValueError("make_patient_split: no patients given.")
    counts = list(counts) if counts is not None else split_counts(len(unique), fractions)
    if sum(counts) != len(unique) or len(counts) != len(names):
        raise ValueError(f"split counts {counts} must give one count per split {list(names)} "
                         f"and sum to the {len(unique)} patients.")
    random.Random(seed).shuffle(unique)
    splits, start = {}, 0
    for name, count in zip(names, counts, strict=True):
        splits[name] = sorted(unique[start:start + count], key=_natural_key)
        start += count
    check_no_patient_overlap(splits)
    return splits


def random_image_split(ids: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0,
                       names: Sequence[str] = SPLIT_NAMES) -> dict[str, list[str]]:
    """The *wrong* way, kept to show the trap: a seeded random split of image ids, patients ignored."""
    shuffled = list(ids)
    random.Random(seed).shuffle(shuffled)
    splits, start = {}, 0
    for name, count in zip(names, split_counts(len(shuffled), fractions), strict=True):
        splits[name] = shuffled[start:start + count]
        start += count
    return splits


def shared_patients(split: dict[str, Sequence[str]], patient_of: Callable[[str], str] = str) -> dict[str, set]:
    """Patients that occur in two splits, for every pair of splits (``"train&test"`` → {...})."""
    members = {name: {patient_of(item) for item in items} for name, items in split.items()}
    names = list(members)
    return {f"{a}&{b}": members[a] & members[b] for i, a in enumerate(names) for b in names[i + 1:]}


def check_no_patient_overlap(split: dict[str, Sequence[str]], patient_of: Callable[[str], str] = str) -> None:
    """Raise :class:`SplitLeakageError` when a patient appears in two splits."""
    leaks = {pair: sorted(found)[:5] for pair, found in shared_patients(split, patient_of).items() if found}
    if leaks:
        raise SplitLeakageError(f"patients appear in more than one split: {leaks}. Split by patient "
                                f"(make_patient_split), never by image.")


def save_split(path: str | Path, splits: dict[str, list[str]], dataset: str, seed: int | None,
               note: str = "") -> Path:
    """Write a patient-wise split as JSON (checked for leakage first) and return its path."""
    check_no_patient_overlap(splits)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"dataset": dataset, "seed": seed, "unit": "patient", "note": note,
                "counts": {name: len(items) for name, items in splits.items()}, "splits": splits}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=1), encoding="utf-8")
    temporary.replace(path)
    return path


def load_split(path: str | Path) -> dict[str, Any]:
    """Read a split written by :func:`save_split` (and check it again)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file not found; build one with make_patient_split + save_split.")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        splits = document["splits"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a split file written by save_split ({error}).") from error
    check_no_patient_overlap(splits)
    return document


def default_split_path(dataset: str, seed: int, data_dir: Path | None = None) -> Path:
    """Where the shared split of ``dataset`` lives: ``<data dir>/splits/<dataset>-seed<seed>.json``."""
    return Path(data_dir or config.data_dir()) / "splits" / f"{dataset}-seed{seed}.json"


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None, help="data directory (default: $BS_DATA_DIR)")


def run(args: argparse.Namespace) -> int:
    from bs_lib.download import DownloadError, load_registry, status

    try:
        registry = load_registry()
    except DownloadError as error:
        print(f"error: {error}")
        return 1
    data_dir = args.data_dir or config.data_dir()
    print(f"data directory: {data_dir}\n")
    print(f"{'name':<16} {'source':<12} {'status':<22} title")
    for entry in registry.values():
        print(f"{entry.name:<16} {entry.source:<12} {status(entry, data_dir):<22} {entry.title}")
    print("\nget one with: python -m bs_lib download NAME   (details: datasets/<name>.md)")
    return 0
