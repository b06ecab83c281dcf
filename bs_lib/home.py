"""Where the course lives: one repository URL, written once, in ``pyproject.toml``.

``[project.urls] Repository`` is the only place the address is written by
hand. Everything else is derived from it here: the Colab badges of the README
and of each notebook, the notebooks' install cell
(``pip install git+https://...``), the issue tracker the command line points
to, the README's link to the course site on GitHub Pages. ``python -m bs_lib
notebooks urls --write`` rewrites the derived copies in the README and the
notebooks after the address changes, and a test fails when any of them
disagrees.

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


def pages_url(owner: str, name: str) -> str:
    """Where GitHub Pages serves repository ``owner/name``: ``https://owner.github.io/name/`` (host in lower case)."""
    return f"https://{owner.lower()}.github.io/{name}/"


def site_url() -> str:
    """The course's web site (:mod:`bs_lib.course.site`, published by ``.github/workflows/site.yml``)."""
    return pages_url(*repository().split("/"))


# --------------------------------------------------------------------------- the derived copies

#: Each form in which the README and the notebooks repeat the repository: how to find it (the groups
#: ``owner`` and ``name``), and how to write it for another repository.
DERIVED = (
    (re.compile(r"https://colab\.research\.google\.com/github/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+)/blob/"),
     lambda owner, name: f"https://colab.research.google.com/github/{owner}/{name}/blob/"),
    (re.compile(r"git\+https://github\.com/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+?)(?=[\"'@\s\\]|$)"),
     lambda owner, name: f"git+https://github.com/{owner}/{name}"),
    (re.compile(r"\[the course site\]\(https://(?P<owner>[\w-]+)\.github\.io/(?P<name>[\w.-]+)/\)"),
     lambda owner, name: f"[the course site]({pages_url(owner, name)})"),  # only the README's own link
)


def derived_files(root=SOURCE_ROOT) -> list:
    """The files that repeat the address: the README, the notebook template and every notebook pair."""
    notebooks = root / "notebooks"
    return [root / "README.md", *sorted(notebooks.glob("*.py")), *sorted(notebooks.glob("*.ipynb"))]


def stale_addresses(text: str, wanted: str) -> list[str]:
    """The repositories ``text`` names in a badge, an install source or a site link, other than ``wanted``."""
    owner, name = wanted.split("/")
    return [f"{match['owner']}/{match['name']}" for pattern, render in DERIVED for match in pattern.finditer(text)
            if match.group(0) != render(owner, name)]


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
            for pattern, render in DERIVED:
                text = pattern.sub(lambda _, render=render: render(*wanted.split("/")), text)
            path.write_text(text, encoding="utf-8")
    return stale
