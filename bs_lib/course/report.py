"""Execute the course with papermill and write browsable reports.

``python -m bs_lib report`` runs every course notebook (``notebooks/NN_*.ipynb``)
top to bottom with one profile, and writes to ``reports/``:

* ``NN_name.ipynb``: the executed notebook (kept even when it fails, with the traceback);
* ``NN_name.html``: the same rendered without code (``nbconvert --no-input``);
* ``index.html`` and ``summary.json``: every notebook with its status, run time and links.

A failing notebook is reported and the others still run; the command exits
non-zero when any failed. Parameters given with ``-p NAME VALUE`` are checked
against each notebook's ``parameters`` cell before anything runs, because
papermill on its own only warns about a misspelled name.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import html
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bs_lib.config import PROFILE_ENV, PROFILES, RUNS_DIR_ENV, UnknownParameterError
from bs_lib.course.listing import NOTEBOOKS_DIR, select_notebooks
from bs_lib.interactive import STATIC_ENV

KERNEL = "python3"


@dataclass
class NotebookResult:
    """How one notebook fared."""

    notebook: str
    status: str  # "ok" or "failed"
    seconds: float
    error: str | None = None
    executed: str | None = None  # path of the executed .ipynb, relative to the report folder
    html: str | None = None


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in the notebook's ``parameters`` cell (what ``-p`` may set)."""
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def check_parameters(notebooks: list[Path], parameters: dict) -> None:
    """Fail before running anything when a parameter is not declared by every notebook."""
    for notebook in notebooks:
        known = declared_parameters(notebook)
        unknown = set(parameters) - known
        if unknown:
            raise UnknownParameterError(
                f"{notebook.name} has no parameter(s) {sorted(unknown)}; it declares {sorted(known)}. "
                "Fix the spelling, or select notebooks with --notebooks."
            )


def execute(notebook: Path, output_dir: Path, parameters: dict, timeout: float | None) -> NotebookResult:
    """Run one notebook with papermill and render it to HTML, whatever the outcome."""
    import papermill

    executed = output_dir / notebook.name
    started = time.perf_counter()
    error = None
    try:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=parameters,
            kernel_name=KERNEL,
            cwd=str(notebook.parent),
            progress_bar=False,
            execution_timeout=timeout,
        )
    except papermill.PapermillExecutionError as failure:
        error = f"{failure.ename}: {failure.evalue}"
    except Exception as failure:  # a dead kernel, a timeout, an unreadable notebook
        error = f"{type(failure).__name__}: {failure}"
    seconds = time.perf_counter() - started
    result = NotebookResult(notebook.name, "failed" if error else "ok", round(seconds, 1), error)
    if executed.exists():
        result.executed = executed.name
        result.html = render_html(executed).name
    return result


def render_html(executed: Path) -> Path:
    """``jupyter nbconvert --to html --no-input``: prose, figures and outputs, no code."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    target = executed.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


def write_index(results: list[NotebookResult], output_dir: Path, profile: str) -> Path:
    """``index.html`` (for people) and ``summary.json`` (for scripts)."""
    import torch

    import bs_lib

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    environment = f"bs_lib {bs_lib.__version__}, Python {platform.python_version()}, torch {torch.__version__}"
    summary = {
        "profile": profile,
        "generated": stamp,
        "environment": environment,
        "notebooks": [asdict(r) for r in results],
    }
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")

    rows = []
    for r in results:
        links = " · ".join(
            f'<a href="{html.escape(path)}">{label}</a>'
            for label, path in (("report", r.html), ("notebook", r.executed))
            if path
        )
        detail = f"<pre>{html.escape(r.error)}</pre>" if r.error else ""
        rows.append(
            f'<tr class="{r.status}"><td>{html.escape(r.notebook)}</td><td>{r.status}{detail}</td>'
            f"<td>{r.seconds:.1f} s</td><td>{links}</td></tr>"
        )
    failed = sum(r.status == "failed" for r in results)
    total = sum(r.seconds for r in results)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bone suppression course: report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .4rem .6rem; text-align: left; vertical-align: top; }}
tr.ok td:nth-child(2) {{ color: #1a7f37; font-weight: 600; }}
tr.failed td:nth-child(2) {{ color: #cf222e; font-weight: 600; }}
pre {{ white-space: pre-wrap; font-weight: normal; color: #444; margin: .3rem 0 0; }}
</style></head><body>
<h1>Bone suppression course: report</h1>
<p>Profile <b>{html.escape(profile)}</b> · {len(results) - failed} of {len(results)} notebooks ok ·
{total:.0f} s in all · {html.escape(stamp)} · {html.escape(environment)}</p>
<table><thead><tr><th>notebook</th><th>status</th><th>run time</th><th>links</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""
    index = output_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def run_report(
    notebooks_dir: Path,
    output_dir: Path,
    profile: str,
    parameters: dict | None = None,
    only: list[str] | None = None,
    timeout: float | None = None,
) -> list[NotebookResult]:
    """Execute the selected notebooks in order and write the report folder."""
    from bs_lib.config import get_profile

    profile = get_profile(profile).name
    parameters = {**(parameters or {}), "PROFILE": profile}
    notebooks = select_notebooks(Path(notebooks_dir), only)
    check_parameters(notebooks, parameters)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    os.environ[PROFILE_ENV] = profile  # the kernels inherit it, so library defaults agree
    os.environ.setdefault(STATIC_ENV, "1")  # a report has no hand on a slider: figures at their defaults
    results = []
    with _runs_of_this_report():
        for number, notebook in enumerate(notebooks, start=1):
            print(f"[{number}/{len(notebooks)}] {notebook.name} ...", end=" ", flush=True)
            result = execute(notebook, output_dir, parameters, timeout)
            print(f"{result.status} in {result.seconds:.1f} s", flush=True)
            if result.error:
                print(f"        {result.error.splitlines()[0][:200]}", flush=True)
            results.append(result)
    write_index(results, output_dir, profile)
    return results


@contextlib.contextmanager
def _runs_of_this_report():
    """Unless ``$BS_RUNS_DIR`` chooses a folder, the report's notebooks share a fresh one, removed afterwards.

    Later notebooks then reuse the runs of earlier ones (09 those of 03, 07
    those of 06), and a report never shows a model trained by older code.
    """
    if RUNS_DIR_ENV in os.environ:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="bs-report-runs-") as folder:
        os.environ[RUNS_DIR_ENV] = folder
        try:
            yield
        finally:
            del os.environ[RUNS_DIR_ENV]


# --------------------------------------------------------------------------- command line


def _parse_value(text: str):
    """``-p`` values as papermill reads them: numbers and booleans parsed, the rest strings."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=None, choices=sorted(PROFILES),
                        help="profile for every notebook (default: $BS_PROFILE, else smoke on a CPU)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a notebook parameter, as papermill's -p (repeatable)")
    parser.add_argument("--notebooks", nargs="+", metavar="PREFIX",
                        help="run only the notebooks whose name starts with these prefixes, e.g. 00 01")
    parser.add_argument("--notebooks-dir", type=Path, default=NOTEBOOKS_DIR)
    parser.add_argument("--output", type=Path, default=Path("reports"), help="report folder (default: reports/)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per cell (default: none)")


def run(args: argparse.Namespace) -> int:
    from bs_lib.config import default_profile

    profile = args.profile or default_profile()
    parameters = {name: _parse_value(value) for name, value in args.parameter}
    if "PROFILE" in parameters:
        raise SystemExit("Choose the profile with --profile, not -p PROFILE.")
    results = run_report(args.notebooks_dir, args.output, profile, parameters, args.notebooks, args.timeout)
    failed = [r.notebook for r in results if r.status == "failed"]
    print(f"\n{len(results) - len(failed)} of {len(results)} notebooks ok; report: {args.output / 'index.html'}")
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0
