"""bs_lib: the small library behind the bone-suppression course.

Each module owns one idea of the course and reads like the chapter it serves:

========== =================================================================
config     profiles (smoke | colab | full), seeding, device and precision
report     execute every notebook with papermill and write ``reports/``
cli        ``python -m bs_lib ...`` and the ``bs-lib`` console script
========== =================================================================

Importing the package is cheap: heavy dependencies (torch, papermill) load
only in the modules that need them.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("bs-lib")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

#: Where the course lives; the Colab badges and the install cell point here.
REPOSITORY = "bone-suppression/course"
REPOSITORY_URL = f"https://github.com/{REPOSITORY}"
