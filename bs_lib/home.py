"""Where the course lives: one repository URL, written once, in ``pyproject.toml``.

``[project.urls] Repository`` is the only place the address is written by
hand. Everything else is derived from it here: the Colab badges of the README
and of each notebook, the notebooks' install cell
(``pip install git+https://...``), the issue tracker the command line points
to. ``python -m bs_lib notebooks urls --write`` rewrites the derived copies in
the README and the notebooks after the address changes, and a test fails when
any of them disagrees.

From a clone the address is read from its ``pyproject.toml`` (an edit shows at
once); from an installed package, from the package's metadata, which the same
file produced.
"""

from __future__ import annotations

import re
from importlib import metadata

from bs_lib.resources import SOURCE_ROOT, in_source_tree

DISTRIBUTION = "bs-lib"
GITHUB = re.compile(r"^https://github\.com/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+?)/?$")


def _from_pyproject() -> str | None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    document = tomllib.loads((SOURCE_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return document.get("project", {}).get("urls", {}).get("Repository")


def _from_metadata() -> str | None:
    try:
        entries = metadata.metadata(DISTRIBUTION).get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    for entry in entries:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "repository":
            return url.strip()
    return None


def repository_url() -> str:
    """``https://github.com/OWNER/NAME``, from ``pyproject.toml`` (a clone) or the package metadata."""
    url = _from_pyproject() if in_source_tree() else _from_metadata()
    if not url or not GITHUB.match(url):
        raise RuntimeError(f"pyproject.toml must give [project.urls] Repository = 'https://github.com/OWNER/NAME'; "
                           f"found {url!r}. Reinstall the package after changing it.")
    return url.rstrip("/")


def repository() -> str:
    """``OWNER/NAME``: the GitHub path Colab and pip address."""
    match = GITHUB.match(repository_url())
    return f"{match['owner']}/{match['name']}"


def issues_url() -> str:
    return f"{repository_url()}/issues"


def install_source() -> str:
    """What a notebook's setup cell gives ``pip install`` when ``bs_lib`` is missing (Colab)."""
    return f"git+{repository_url()}"


def colab_url(notebook: str) -> str:
    """The Colab address that opens ``notebooks/<name>.ipynb`` from the main branch."""
    return f"https://colab.research.google.com/github/{repository()}/blob/main/notebooks/{notebook}"


# --------------------------------------------------------------------------- the derived copies

#: The repository as the README and the notebooks spell it: in Colab badges and in the install cell.
DERIVED = (
    re.compile(r"https://colab\.research\.google\.com/github/(?P<repo>[\w.-]+/[\w.-]+)/blob/"),
    re.compile(r"git\+https://github\.com/(?P<repo>[\w.-]+/[\w.-]+?)(?=[\"'@\s\\]|$)"),
)


def derived_files(root=SOURCE_ROOT) -> list:
    """The files that repeat the address: the README, the notebook template and every notebook pair."""
    notebooks = root / "notebooks"
    return [root / "README.md", *sorted(notebooks.glob("*.py")), *sorted(notebooks.glob("*.ipynb"))]


def stale_addresses(text: str, wanted: str) -> list[str]:
    """The repositories ``text`` names in a badge or an install source, other than ``wanted``."""
    return [match["repo"] for pattern in DERIVED for match in pattern.finditer(text) if match["repo"] != wanted]


def sync_addresses(root=SOURCE_ROOT, write: bool = False) -> dict:
    """``{file: [stale repositories]}`` for every derived copy that disagrees; ``write=True`` rewrites them."""
    wanted, stale = repository(), {}
    for path in derived_files(root):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        found = stale_addresses(text, wanted)
        if not found:
            continue
        stale[path] = found
        if write:
            for pattern in DERIVED:
                text = pattern.sub(lambda m: m.group(0).replace(m["repo"], wanted), text)
            path.write_text(text, encoding="utf-8")
    return stale
