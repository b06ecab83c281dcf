"""The course's notebook conventions, as code: check them, and start a new notebook.

Every course notebook ``notebooks/NN_topic.ipynb``

* is paired with ``NN_topic.py`` (jupytext ``py:percent``) and the two agree;
* is committed without outputs, with kernelspec ``python3``;
* opens with a title, a Colab badge pointing at its own path, prerequisites, learning goals,
  a setup cell that installs ``bs_lib`` only when missing, a ``parameters``
  cell declaring ``PROFILE``, and a cell calling ``config.setup``;
* closes with ``## Summary``, ``## Exercises`` (each graded ★ easy, ★★ medium or ★★★ hard)
  and ``## References``;
* never hard-codes a CUDA device;
* states what it checks with :func:`bs_lib.claims.check`, never with a bare
  ``assert`` outside a function;
* keeps none of the template's placeholder text.

``bs-lib notebooks check`` reports every breach; ``bs-lib notebooks new 10 topic
"Title"`` copies ``notebooks/_template.py`` into a new pair; ``bs-lib notebooks
stress`` runs every notebook under several seeds and thread counts
(:mod:`bs_lib.course.stress`, which this command hands its arguments to).
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

from bs_lib import home
from bs_lib.course import stress
from bs_lib.course.listing import COURSE_NOTEBOOK, NOTEBOOKS_DIR, course_notebooks

TEMPLATE = NOTEBOOKS_DIR / "_template.py"
CLOSING_SECTIONS = ["Summary", "Exercises", "References"]
HARD_CODED_CUDA = re.compile(r"""["']cuda(:\d+)?["']|\.cuda\(\)""")
EDITOR_METADATA = ("colab", "widgets", "accelerator", "gpuClass")
CELL_METADATA_ALLOWED = {"tags", "lines_to_next_cell"}  # jupytext keeps blank-line counts to round-trip the .py
RUN_TIME_TABLE = "| profile | hardware | run time |"
#: sentences of notebooks/_template.py that a finished notebook has replaced with its own
TEMPLATE_PLACEHOLDERS = (
    "One paragraph that tells the story of this notebook",
    "state the first thing a student will be able to do",
    "what a student must know first, and where it is taught",
    "Prose, a figure, the maths, then the few lines of code",
    "what was learned, in three to five bullets",
    "A question with a concrete task",
    "The answer, or the code cell below",
    "Author et al., *Title*, Venue Year",
)


def colab_url(notebook: Path | str) -> str:
    """The Colab address that opens ``notebooks/<name>.ipynb`` from the main branch."""
    return home.colab_url(Path(notebook).with_suffix(".ipynb").name)


def _headings(source: str, level: int) -> list[str]:
    prefix = "#" * level + " "
    return [line[len(prefix):].strip() for line in source.splitlines() if line.startswith(prefix)]


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _titles(nb) -> list[str]:
    """The ``# Title`` lines of the markdown cells, outside fenced code."""
    titles = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        fenced = False
        for line in cell.source.splitlines():
            fenced ^= line.lstrip().startswith("```")
            if not fenced and line.startswith("# "):
                titles.append(line[2:].strip())
    return titles


def bare_asserts(source: str) -> list[int]:
    """Line numbers of the ``assert`` statements of a cell that run outside any function.

    IPython's ``%magic`` and ``!shell`` lines are blanked before parsing; a cell
    that still does not parse reports nothing (ruff reports it).
    """
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return []
    found, pending = [], list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue  # a helper's asserts guard its arguments, not the notebook's claims
        if isinstance(node, ast.Assert):
            found.append(node.lineno)
        pending.extend(ast.iter_child_nodes(node))
    return sorted(found)


EXERCISE = re.compile(r"^(\d+)\. (.*)$")


def check_teaching(nb) -> list[str]:
    """A ``## Prerequisites`` section before the learning goals; every exercise graded with stars."""
    text = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    problems = []
    prerequisites, goals = text.find("## Prerequisites"), text.find("## Learning goals")
    if prerequisites < 0 or (goals >= 0 and prerequisites > goals):
        problems.append("the opening needs a '## Prerequisites' section (what to know first) before "
                        "'## Learning goals'")
    exercises = text.split("## Exercises", 1)[1].split("## References", 1)[0] if "## Exercises" in text else ""
    for line in exercises.splitlines():
        match = EXERCISE.match(line.strip())
        if match and not re.match(r"★{1,3} ", match[2]):
            problems.append(f"exercise {match[1]} has no difficulty: start it with ★, ★★ or ★★★")
    return problems


def check_claims(nb) -> list[str]:
    """Bare top-level asserts, and text left over from the template."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            problems += [f"cell {i}, line {line}: a bare assert; state the claim with check(condition, "
                         f"\"what was shown\") from bs_lib.claims" for line in bare_asserts(cell.source)]
        problems += [f"cell {i} still holds the template's placeholder \"{phrase}\"; write the notebook's own text"
                     for phrase in TEMPLATE_PLACEHOLDERS if phrase in cell.source]
    return problems


def check_structure(nb, name: str) -> list[str]:
    """Problems with the fixed opening and closing of one notebook (empty list: none)."""
    problems: list[str] = []
    cells = nb.cells
    if not cells or cells[0].cell_type != "markdown" or not _headings(cells[0].source, 1):
        return ["the first cell must be markdown starting with a '# Title'"]
    opening = cells[0].source
    badge = re.search(r"\(https://colab\.research\.google\.com/github/[^)\s]+\)", opening)
    if badge is None:
        problems.append("the first cell has no Colab badge")
    elif badge.group(0)[1:-1] != colab_url(name):
        problems.append(f"the Colab badge points at {badge.group(0)[1:-1]}, not {colab_url(name)}")
    if "Learning goals" not in _headings(opening, 2):
        problems.append("the first cell has no '## Learning goals' section")
    titles = _titles(nb)
    if len(titles) > 1:
        problems.append(f"{len(titles)} titles ({'; '.join(titles)}); a notebook has one '# Title'")
    tables = sum(c.source.count(RUN_TIME_TABLE) for c in cells if c.cell_type == "markdown")
    if tables > 1:
        problems.append(f"{tables} run-time tables; keep one, in the first cell")

    code = [(i, c) for i, c in enumerate(cells) if c.cell_type == "code"]
    setup = next((i for i, c in code if 'find_spec("bs_lib")' in c.source), None)
    parameters = [i for i, c in code if "parameters" in _tags(c)]
    if setup is None:
        problems.append("no setup cell that installs bs_lib when find_spec(\"bs_lib\") is None")
    elif home.install_source() not in cells[setup].source:
        problems.append(f"the setup cell does not install from {home.install_source()} (pyproject.toml's "
                        f"Repository): run python -m bs_lib notebooks urls --write")
    if len(parameters) != 1:
        problems.append(f"expected one cell tagged 'parameters', found {len(parameters)}")
    else:
        index = parameters[0]
        if not re.search(r"^PROFILE\s*=", cells[index].source, re.MULTILINE):
            problems.append("the parameters cell does not declare PROFILE")
        if setup is not None and setup > index:
            problems.append("the setup cell must come before the parameters cell")
        following = next((c for i, c in code if i > index), None)
        if following is None or "config.setup(" not in following.source:
            problems.append("the code cell after the parameters cell must call config.setup(...)")

    sections = [h for c in cells if c.cell_type == "markdown" for h in _headings(c.source, 2)]
    if sections[-len(CLOSING_SECTIONS):] != CLOSING_SECTIONS:
        problems.append(f"the last sections must be {CLOSING_SECTIONS}; found {sections[-3:]}")
    for i, cell in code:
        if HARD_CODED_CUDA.search(cell.source):
            problems.append(f"cell {i} hard-codes a CUDA device; use run.device")
    return problems


def check_stripped(nb) -> list[str]:
    """Problems that show a notebook was committed straight from an editor."""
    problems = []
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"kernelspec is {kernel!r}, not 'python3'")
    for key in EDITOR_METADATA:
        if key in nb.metadata:
            problems.append(f"notebook metadata carries editor state {key!r}")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs") or cell.get("execution_count") is not None:
            problems.append(f"cell {i} has outputs or an execution count")
        if set(cell.get("metadata", {})) - CELL_METADATA_ALLOWED:
            problems.append(f"cell {i} carries metadata other than tags: {sorted(cell.metadata)}")
    return problems


def cell_signature(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    """What must agree between the two files of a pair: type, source and tags of each cell."""
    return [(c.cell_type, c.source.strip(), tuple(sorted(_tags(c)))) for c in nb.cells]


def check_pair(ipynb: Path) -> list[str]:
    """Problems with the jupytext pair of ``ipynb`` (content compared, never timestamps)."""
    import jupytext

    script = ipynb.with_suffix(".py")
    if not script.exists():
        return [f"{script.name} is missing; run: jupytext --set-formats ipynb,py:percent {ipynb.name}"]
    left, right = cell_signature(jupytext.read(ipynb)), cell_signature(jupytext.read(script))
    if left == right:
        return []
    for i, (a, b) in enumerate(zip(left, right, strict=False)):
        if a != b:
            return [f"{ipynb.name} and {script.name} differ at cell {i}; run: jupytext --sync {script.name}"]
    return [f"{ipynb.name} has {len(left)} cells, {script.name} {len(right)}; run: jupytext --sync"]


def check_notebook(ipynb: Path) -> list[str]:
    """Every convention above, for one course notebook."""
    import nbformat

    nb = nbformat.read(ipynb, as_version=4)
    return (check_pair(ipynb) + check_stripped(nb) + check_structure(nb, ipynb.name) + check_claims(nb)
            + check_teaching(nb))


def new_notebook(number: int, slug: str, title: str, notebooks_dir: Path = NOTEBOOKS_DIR) -> Path:
    """Create ``NN_slug.py`` and ``NN_slug.ipynb`` from the template; returns the ``.ipynb``."""
    import jupytext

    name = f"{number:02d}_{slug}"
    if not COURSE_NOTEBOOK.match(name + ".ipynb"):
        raise ValueError(f"{name!r} is not a course notebook name: use a number and a lower_case_slug.")
    target = Path(notebooks_dir) / f"{name}.ipynb"
    if target.exists() or target.with_suffix(".py").exists():
        raise FileExistsError(f"{target.stem} already exists in {notebooks_dir}; nothing was written.")
    text = TEMPLATE.read_text(encoding="utf-8").replace("NN_SLUG", name)
    text = text.replace("# # NN · TITLE", f"# # {number:02d} · {title}")
    target.with_suffix(".py").write_text(text, encoding="utf-8")
    jupytext.write(jupytext.reads(text, fmt="py:percent"), target, fmt="ipynb")
    return target


def sync_urls(write: bool = False) -> int:
    """Report (or, with ``write``, rewrite) every badge and install source that names another repository."""
    stale = home.sync_addresses(write=write)
    for path, found in stale.items():
        print(f"{'rewrote' if write else 'stale'}  {path.name}: {', '.join(sorted(set(found)))} -> {home.repository()}")
    if not stale:
        print(f"the README and every notebook point at {home.repository_url()}")
    return 1 if stale and not write else 0


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", help="check every course notebook against the conventions")
    check.add_argument("paths", nargs="*", type=Path, help="notebooks to check (default: all)")
    new = actions.add_parser("new", help="start a new notebook pair from notebooks/_template.py")
    new.add_argument("number", type=int)
    new.add_argument("slug", help="lower_case_words, e.g. vessel_enhancement")
    new.add_argument("title", help="the notebook's title")
    stress.add_arguments(actions.add_parser("stress", help="run every notebook under seeds 0-2 and 1-2 torch "
                                                           "threads; print a pass/fail table"))
    urls = actions.add_parser("urls", help="check that the README and the notebooks point at the repository "
                                           "of pyproject.toml; --write rewrites those that do not")
    urls.add_argument("--write", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.action == "urls":
        return sync_urls(write=args.write)
    if args.action == "stress":
        return stress.run(args)
    if args.action == "new":
        target = new_notebook(args.number, args.slug, args.title)
        print(f"created {target} and {target.with_suffix('.py').name}; add it to the README course map")
        return 0
    failures = 0
    for ipynb in args.paths or course_notebooks():
        problems = check_notebook(ipynb)
        failures += bool(problems)
        print(f"{'ok' if not problems else 'FAIL':>4}  {ipynb.name}")
        for problem in problems:
            print(f"      - {problem}")
    return 1 if failures else 0
