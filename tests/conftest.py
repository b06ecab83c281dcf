"""Fixtures shared by the unit tests."""

from pathlib import Path

import matplotlib
import pytest

from bs_lib.config import real_pairs_dir

matplotlib.use("Agg")  # figures in unit tests are drawn, never shown


@pytest.fixture(scope="session")
def real_pairs() -> Path:
    """The real sample pairs (``shared/data/real-pairs``); the test is skipped when absent."""
    folder = real_pairs_dir()
    if folder is None:
        pytest.skip("the real sample pairs (shared/data/real-pairs or $BS_REAL_PAIRS) are not present")
    return folder
