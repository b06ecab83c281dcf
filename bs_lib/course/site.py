"""The course as a static web site: every notebook executed, readable without running anything.

``python -m bs_lib site --output site/`` writes a folder a web server (GitHub
Pages) can serve as it is:

* ``index.html``, the home page: the README's title, its opening paragraph and
  its course map, each notebook linked to its page with what it teaches;
* ``NN_topic.html``, one page per notebook as it ran in the ``smoke`` profile:
  prose, code, printed results and figures (embedded as data URIs, so a page
  is one file). An exercise's solution cell (tagged ``solution``) is folded
  into a ``<details>`` the reader opens when ready;
* ``notebook.css`` (JupyterLab's notebook style, written once rather than into
  every page) and ``site.css``, the site's own few rules.

The notebooks come from a folder of executed ones (``--executed reports/``,
what ``python -m bs_lib report`` leaves), or are executed now, as the report
does: papermill, one profile, interactive figures drawn once at their defaults
(``BS_STATIC=1``). A notebook that stopped with an error is published as it
ran, with its traceback, and marked on the home page; the command then exits 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bs_lib import home
from bs_lib.config import PROFILES
from bs_lib.course.listing import NOTEBOOKS_DIR, select_notebooks
from bs_lib.course.stress import first_error
from bs_lib.resources import SOURCE_ROOT

README = SOURCE_ROOT / "README.md"
SOLUTION_TAG = "solution"

#: The page template: JupyterLab's own, with the shared style sheets linked instead of inlined, the site's
#: navigation above the notebook, and every cell tagged ``solution`` folded into a ``<details>``.
PAGE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{% block notebook_css %}
<link rel="stylesheet" href="notebook.css">
<link rel="stylesheet" href="site.css">
{% endblock notebook_css %}
{%- block body_header -%}
<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
{{ resources.site_navigation }}
<main>
{%- endblock body_header -%}
{%- block any_cell scoped -%}
{%- if '""" + SOLUTION_TAG + """' in cell.metadata.get('tags', []) -%}
<details class="solution"><summary>Solution</summary>
{{ super() }}
</details>
{%- else -%}
{{ super() }}
{%- endif -%}
{%- endblock any_cell -%}
"""

#: The site's own rules: the navigation bar, the home page, the folded solutions.
SITE_CSS = """\
body { margin: 0; }
a.anchor-link, .jp-Collapser { display: none; }
.jp-InputArea, .jp-InputArea-editor { overflow: hidden; }
main { max-width: 64rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
nav.site { position: sticky; top: 0; z-index: 10; display: flex; gap: 1.2rem; flex-wrap: wrap;
           padding: .6rem 1.5rem; background: #1f4e8c; font: 15px/1.4 system-ui, sans-serif; }
nav.site a { color: #fff; text-decoration: none; }
nav.site a:hover { text-decoration: underline; }
nav.site .home { font-weight: 600; margin-right: auto; }
details.solution { margin: .4rem 0 1rem; border-left: 3px solid #4a78b0; padding-left: .6rem; }
details.solution > summary { cursor: pointer; color: #1f4e8c; font: 600 14px system-ui, sans-serif; }
.home-page { font: 16px/1.55 system-ui, sans-serif; color: #222; }
.home-page h1 { font-size: 1.9rem; margin: 1.5rem 0 .8rem; }
.home-page table { border-collapse: collapse; width: 100%; margin: 1.2rem 0; }
.home-page td, .home-page th { border-bottom: 1px solid #ddd; padding: .5rem .6rem; text-align: left;
                               vertical-align: top; }
.home-page td.number { color: #777; font-variant-numeric: tabular-nums; }
.home-page .failed { color: #cf222e; font-weight: 600; }
.home-page footer { margin-top: 2rem; color: #666; font-size: .9rem; }
"""


@dataclass(frozen=True)
class MapEntry:
    """One row of the README's course map: ``00``, "The field at a glance", ``00_survey``, what it teaches."""

    number: str
    title: str
    notebook: str  # the file stem, e.g. "00_survey"
    teaches: str  # Markdown, as the README writes it


@dataclass(frozen=True)
class Page:
    """One published notebook: its page, its title and what it teaches, and how its run ended."""

    notebook: str
    title: str
    teaches: str
    error: str | None  # ``Name: message`` of the first failing cell, None when every cell ran

    @property
    def file(self) -> str:
        return f"{self.notebook}.html"


# --------------------------------------------------------------------------- the course map


#: A course-map row: ``| 00 | [Title](notebooks/00_survey.ipynb) [badge](colab) | teaches | time |``.
MAP_ROW = re.compile(r"^\|\s*(?P<number>\d\d)\s*\|\s*\[(?P<title>[^\]]+)\]\(notebooks/(?P<notebook>[\w-]+)\.ipynb\)"
                     r"[^|]*\|\s*(?P<teaches>[^|]*?)\s*\|")


def course_map(readme: str) -> list[MapEntry]:
    """The rows of the README's ``## Course map`` table, in order."""
    return [MapEntry(**match.groupdict()) for line in readme.splitlines() if (match := MAP_ROW.match(line))]


def readme_opening(readme: str) -> tuple[str, str]:
    """The README's ``# title`` and its first paragraph (Markdown)."""
    lines = readme.splitlines()
    title = next((line[2:].strip() for line in lines if line.startswith("# ")), "Bone suppression in chest X-rays")
    start = next((i + 1 for i, line in enumerate(lines) if line.startswith("# ")), 0)
    paragraph: list[str] = []
    for line in lines[start:]:
        if line.strip():
            paragraph.append(line.strip())
        elif paragraph:
            break
    return title, " ".join(paragraph)


def markdown(text: str) -> str:
    """Markdown to HTML (mistune, which nbconvert brings), without the wrapping paragraph of one line."""
    import mistune

    rendered = mistune.html(text).strip()
    inner = rendered.removeprefix("<p>").removesuffix("</p>")
    return inner if "<p>" not in inner else rendered


def notebook_title(nb, fallback: str) -> str:
    """A notebook's ``# Title``: its first level-one heading."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


# --------------------------------------------------------------------------- the pages


def exporter():
    """nbconvert's HTML exporter with the site's page template (inputs shown)."""
    import jinja2
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", template_file="site.html.j2",
                        extra_loaders=[jinja2.DictLoader({"site.html.j2": PAGE_TEMPLATE})])


def notebook_css() -> str:
    """JupyterLab's notebook style sheet and its light theme, as the ``lab`` template would inline them."""
    for folder in exporter().template_paths:
        static = Path(folder) / "static"
        if (static / "index.css").is_file() and (static / "theme-light.css").is_file():
            return (static / "index.css").read_text(encoding="utf-8") + "\n" + \
                (static / "theme-light.css").read_text(encoding="utf-8")
    raise FileNotFoundError("nbconvert's lab template (static/index.css) was not found; reinstall nbconvert")


def navigation(page: Page, previous: Page | None, following: Page | None) -> str:
    """The bar above each notebook: home, neighbours, and the notebook in Colab."""
    links = ['<a class="home" href="index.html">Bone suppression course</a>']
    if previous:
        links.append(f'<a href="{previous.file}">← {html.escape(previous.title)}</a>')
    if following:
        links.append(f'<a href="{following.file}">{html.escape(following.title)} →</a>')
    links.append(f'<a href="{home.colab_url(page.notebook + ".ipynb")}">Open in Colab</a>')
    return f'<nav class="site">{"".join(links)}</nav>'


def render_page(executed: Path, page: Page, previous: Page | None, following: Page | None) -> str:
    """One executed notebook as a page: inputs, outputs and figures, solutions folded."""
    import nbformat

    resources = {"metadata": {"name": page.title}, "site_navigation": navigation(page, previous, following)}
    body, _ = exporter().from_notebook_node(nbformat.read(executed, as_version=4), resources=resources)
    return repository_links(body)


def repository_links(body: str) -> str:
    """Links out of ``notebooks/`` (``../papers/x.yaml``, ``../CONTRIBUTING.md``) point at the repository.

    In a clone they lead to the file beside the notebook; on the site, which
    holds only pages, to the same file on GitHub.
    """
    return body.replace('href="../', f'href="{home.repository_url()}/blob/main/')


def plan_pages(executed: list[Path], entries: list[MapEntry]) -> list[Page]:
    """Each executed notebook with its title and what it teaches: from the course map, else from itself."""
    import nbformat

    known = {entry.notebook: entry for entry in entries}
    pages = []
    for path in executed:
        entry = known.get(path.stem)
        if entry is not None:
            title, teaches = f"{entry.number} · {entry.title}", entry.teaches
        else:
            title, teaches = notebook_title(nbformat.read(path, as_version=4), path.stem), ""
        pages.append(Page(path.stem, title, teaches, first_error(path)))
    return pages


def index_page(pages: list[Page], readme: str, profile: str) -> str:
    """The home page: the README's title and opening, then the course map, each row linked to its page."""
    title, opening = readme_opening(readme)
    rows = []
    for page in pages:
        failed = f' <span class="failed">stopped with {html.escape(page.error)}</span>' if page.error else ""
        colab = home.colab_url(page.notebook + ".ipynb")
        rows.append(f'<tr><td><a href="{page.file}">{html.escape(page.title)}</a>{failed}</td>'
                    f"<td>{markdown(page.teaches)}</td>"
                    f'<td><a href="{colab}">Colab</a></td></tr>')
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="site.css">
</head><body>
<nav class="site"><a class="home" href="index.html">Bone suppression course</a>
<a href="{home.repository_url()}">Repository</a></nav>
<main class="home-page">
<h1>{html.escape(title)}</h1>
<p>{markdown(opening)}</p>
<p>Every notebook below ran top to bottom in the <code>{html.escape(profile)}</code> profile (a CPU, the
synthetic phantom, seconds per notebook): read the code, the results and the figures here, or open the
notebook in Colab to run it on a GPU.</p>
<table><thead><tr><th>notebook</th><th>what it teaches</th><th>run it</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<footer>Built {stamp} from <a href="{home.repository_url()}">{html.escape(home.repository())}</a>.</footer>
</main></body></html>
"""


# --------------------------------------------------------------------------- the site


def executed_notebooks(executed_dir: Path | None, profile: str, only: list[str] | None,
                       notebooks_dir: Path, scratch: Path) -> tuple[list[Path], str]:
    """The executed notebooks and their profile: those of ``executed_dir``, or the course run now into ``scratch``."""
    if executed_dir is not None:
        summary = Path(executed_dir) / "summary.json"  # written by the report: it knows the profile
        if summary.is_file():
            profile = json.loads(summary.read_text(encoding="utf-8")).get("profile", profile)
        return select_notebooks(Path(executed_dir), only), profile
    from bs_lib.course.report import run_report

    run_report(notebooks_dir, scratch, profile, only=only)
    return select_notebooks(scratch, only), profile


def build_site(output: Path | str, executed_dir: Path | str | None = None, profile: str = "smoke",
               only: list[str] | None = None, notebooks_dir: Path = NOTEBOOKS_DIR,
               readme: Path = README) -> list[Page]:
    """Write the site into ``output`` (emptied first) and return its pages."""
    output = Path(output)
    readme_text = Path(readme).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="bs-site-") as scratch:
        executed, profile = executed_notebooks(executed_dir, profile, only, Path(notebooks_dir), Path(scratch))
        pages = plan_pages(executed, course_map(readme_text))
        if output.exists():
            shutil.rmtree(output)
        output.mkdir(parents=True)
        for i, (path, page) in enumerate(zip(executed, pages, strict=True)):
            previous, following = (pages[i - 1] if i else None), (pages[i + 1] if i + 1 < len(pages) else None)
            (output / page.file).write_text(render_page(path, page, previous, following), encoding="utf-8")
    (output / "notebook.css").write_text(notebook_css(), encoding="utf-8")
    (output / "site.css").write_text(SITE_CSS, encoding="utf-8")
    (output / "index.html").write_text(index_page(pages, readme_text, profile), encoding="utf-8")
    return pages


def site_size(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, default=Path("site"), help="the site folder (default: site/)")
    parser.add_argument("--profile", default="smoke", choices=sorted(PROFILES),
                        help="the profile the notebooks run in (default: smoke)")
    parser.add_argument("--executed", type=Path, default=None, metavar="FOLDER",
                        help="publish the executed notebooks of FOLDER (e.g. reports/) instead of running them")
    parser.add_argument("--notebooks", nargs="+", metavar="PREFIX",
                        help="publish only the notebooks whose name starts with these prefixes, e.g. 00 01")
    parser.add_argument("--notebooks-dir", type=Path, default=NOTEBOOKS_DIR)


def run(args: argparse.Namespace) -> int:
    pages = build_site(args.output, args.executed, args.profile, args.notebooks, args.notebooks_dir)
    failed = [page.notebook for page in pages if page.error]
    size = site_size(args.output) / 1e6
    print(f"\nwrote {len(pages)} notebook pages and index.html into {args.output}/ ({size:.1f} MB); "
          f"home page: {args.output / 'index.html'}")
    if failed:
        print("stopped with an error (published as they ran): " + ", ".join(failed))
    return 1 if failed else 0
