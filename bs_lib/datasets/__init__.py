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

The package holds one job per module, and everything is importable from here
(``from bs_lib.datasets import get_dataset, real_pairs, PairedFolder``):

* ``splits``: patient-wise splits, saved and checked; ``split=`` for every dataset;
* ``folders``: finding and pairing image files; :class:`PairedFolder`;
* ``public``: BSE-JSRT, SZCH-X-Rays, JSRT, JSRT bone masks, the Baidu JSRT pairs;
* ``real``: the real test sets (the SZCH sample pairs, Gusarev's pairs) and :func:`real_pairs`;
* ``synthetic``: :class:`PhantomDataset`, the phantom's chests drawn by :func:`bs_lib.phantom.render`;
* ``catalogue``: :func:`get_dataset` and the ``datasets`` command.
"""

from bs_lib.datasets.catalogue import DATASETS, get_dataset, profile_dataset, usable_dataset
from bs_lib.datasets.folders import (
    IMAGE_SUFFIXES,
    DatasetNotFoundError,
    PairedFolder,
    RadiographFolder,
    discover_pair_folders,
    find_folder,
    how_to_get,
    list_images,
    match_pairs,
)
from bs_lib.datasets.public import (
    BSEJSRT,
    JSRT,
    JSRTBoneMasks,
    JSRTBSEBaidu,
    SZCHXRays,
    augmented_pairs,
    official_szch_split,
)
from bs_lib.datasets.real import (
    TEST_SETS,
    GusarevDES,
    RealSamplePairs,
    crop_to_common_size,
    local_copy,
    looks_conventional,
    real_pairs,
)
from bs_lib.datasets.splits import (
    SPLIT_NAMES,
    SplitLeakageError,
    check_no_patient_overlap,
    default_split_path,
    load_split,
    make_patient_split,
    random_image_split,
    save_split,
    select_split,
    shared_patients,
    split_counts,
)
from bs_lib.datasets.synthetic import PhantomDataset

__all__ = [
    "BSEJSRT", "DATASETS", "IMAGE_SUFFIXES", "JSRT", "SPLIT_NAMES", "TEST_SETS", "DatasetNotFoundError",
    "GusarevDES", "JSRTBSEBaidu", "JSRTBoneMasks", "PairedFolder", "PhantomDataset", "RadiographFolder",
    "RealSamplePairs", "SZCHXRays",
    "SplitLeakageError", "augmented_pairs", "check_no_patient_overlap", "crop_to_common_size",
    "default_split_path", "discover_pair_folders", "find_folder", "get_dataset", "how_to_get", "list_images",
    "load_split", "local_copy", "looks_conventional", "make_patient_split", "match_pairs", "official_szch_split",
    "profile_dataset", "random_image_split", "real_pairs", "save_split", "select_split", "shared_patients",
    "split_counts", "usable_dataset",
]

