"""``python -m bs_lib papers new|check|build``: the survey's command line, and new entries.

* ``new`` scaffolds ``papers/<id>.yaml`` from flags, or asks for each missing
  field in a terminal (:func:`new_entry`); it validates the entry before writing
  and never overwrites one;
* ``check`` lists every problem of every entry and fails on any error;
* ``build`` writes ``papers/README.md`` and ``papers/figures/`` (``--check``
  writes nothing and fails when the committed index is out of date).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bs_lib.course.survey.entries import (
    ENTRY_SUFFIXES,
    INDEX_NAME,
    PAPERS_DIR,
    PaperDatabaseError,
    check_folder,
    errors_only,
    load_papers,
)
from bs_lib.course.survey.figures import FIGURE_FILES
from bs_lib.course.survey.index import FIGURES_DIR_NAME, build_index, render_index
from bs_lib.course.survey.schema import (
    CATEGORIES,
    EVIDENCE_LEVELS,
    PLACEHOLDER,
    YEAR_MAX,
    YEAR_MIN,
    Problem,
    display_path,
    validate_entry,
)

# --------------------------------------------------------------------------- new entries


def suggest_id(authors: list[str], year: int | str) -> str:
    """A slug from the first author's surname and the year: ``["M. Gusarev"], 2017 -> gusarev-2017``."""
    first = authors[0].removesuffix("et al.").strip() if authors else "paper"
    surname = first.split()[-1] if first.split() else "paper"
    return f"{slugify(surname)}-{year}"


def slugify(text: str) -> str:
    """Lower case, ASCII letters and digits, single hyphens."""
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "paper"


def entry_skeleton(entry_id: str, title: str, authors: list[str], year: int, venue: str, category: str,
                   datasets: list[str] | None = None, code: str | None = None,
                   links: dict[str, str] | None = None, evidence: str = "unverified") -> str:
    """The YAML text of a new entry: the given fields, empty lists, TODO summary lines."""
    import json

    def dump(value: Any) -> str:  # JSON is valid YAML: quoted strings, flow lists, null
        return json.dumps(value, ensure_ascii=False)

    link_lines = "".join(f"  {kind}: {dump(url)}\n" for kind, url in (links or {}).items())
    summary_hints = {
        "problem": "what goes wrong without this work, in one to three sentences",
        "method": "what the authors built or measured",
        "key_idea": "the one idea to remember",
        "results": "the main findings; say 'not reported in the sources we used' when unknown",
        "limitations": "what it does not show or cannot do",
    }
    summary = "".join(f"  {key}: \"{PLACEHOLDER}: {hint}\"\n" for key, hint in summary_hints.items())
    return (
        f"id: {entry_id}\n"
        f"title: {dump(title)}\n"
        f"authors: {dump(list(authors))}\n"
        f"year: {int(year)}\n"
        f"venue: {dump(venue)}\n"
        f"category: {category}\n"
        f"also_in: []\n"
        f"highlighted: false\n"
        f"datasets: {dump(list(datasets or []))}\n"
        "metrics: []  # e.g. - {name: PSNR, value: 33.2, unit: dB, dataset: JSRT, resolution: 1024,\n"
        "             #         source: paper}\n"
        f"code: {dump(code)}\n"
        + (f"links:\n{link_lines}" if link_lines else "links: {}\n")
        + f"evidence: {evidence}\n"
        "unverified: []\n"
        f"summary:\n{summary}"
        "notebooks: []\n"
    )


def new_entry(folder: Path | str, entry_id: str | None, title: str, authors: list[str], year: int,
              venue: str, category: str, **optional: Any) -> tuple[Path, list[Problem]]:
    """Write ``folder/<id>.yaml`` from the given fields, after validating it.

    Nothing is written when a field is wrong (:class:`PaperDatabaseError`
    lists every problem) or when the entry exists already
    (:class:`FileExistsError`). Returns the new file and its warnings: the
    summary's TODO lines, which a person replaces next.
    """
    import yaml

    entry_id = entry_id or suggest_id(authors, year)
    folder = Path(folder)
    target = folder / f"{entry_id}.yaml"
    if any((folder / f"{entry_id}{suffix}").exists() for suffix in ENTRY_SUFFIXES):
        raise FileExistsError(f"{display_path(target)} already exists; edit it, or choose another --id.")
    text = entry_skeleton(entry_id, title, authors, year, venue, category, **optional)
    problems = validate_entry(yaml.safe_load(text), target)
    if errors_only(problems):
        raise PaperDatabaseError(errors_only(problems))
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target, problems


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``bs-lib papers new|check|build``."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    new = actions.add_parser("new", help="scaffold a new entry from flags or prompts, then validate it")
    new.add_argument("--id", help="slug, e.g. gusarev-2017 (default: first author's surname and year)")
    new.add_argument("--title")
    new.add_argument("--authors", nargs="+", metavar="AUTHOR",
                     help='one argument per author, or one argument separated by ";"')
    new.add_argument("--year", help=f"{YEAR_MIN}..{YEAR_MAX}")
    new.add_argument("--venue", help='journal or conference; "arXiv" for preprints, "unknown" if not known')
    new.add_argument("--category", help=f"one of: {', '.join(CATEGORIES)}")
    new.add_argument("--dataset", dest="datasets", action="append", default=None, metavar="NAME",
                     help="a dataset the paper uses (repeat the flag for several)")
    new.add_argument("--code", help="URL of the code repository")
    new.add_argument("--arxiv", help="arXiv URL, e.g. https://arxiv.org/abs/2412.15670")
    new.add_argument("--doi", help="DOI URL, e.g. https://doi.org/10.1109/TMI.2020.2974159")
    new.add_argument("--evidence", default="unverified", choices=EVIDENCE_LEVELS)
    new.add_argument("--folder", type=Path, default=PAPERS_DIR, help="the papers folder (default: papers/)")

    check = actions.add_parser("check", help="validate every entry; exit 1 and list every problem")
    check.add_argument("--folder", type=Path, default=PAPERS_DIR)

    build = actions.add_parser("build", help="validate, then write papers/README.md and papers/figures/")
    build.add_argument("--folder", type=Path, default=PAPERS_DIR)
    build.add_argument("--output", type=Path, help="write the index here instead of <folder>/README.md")
    build.add_argument("--no-figures", action="store_true", help="skip the figures (faster)")
    build.add_argument("--check", action="store_true",
                       help="write nothing; exit 1 when the committed index is out of date")


def run(args: argparse.Namespace) -> int:
    action = {"new": _run_new, "check": _run_check, "build": _run_build}[args.action]
    return action(args)


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr if problem.severity == "error" else sys.stdout)


def _run_check(args: argparse.Namespace) -> int:
    papers, problems = check_folder(args.folder)
    _print_problems(problems)
    errors = errors_only(problems)
    if errors:
        print(f"papers check: {len(errors)} error(s) in {len({p.path for p in errors})} file(s); "
              f"{len(papers)} valid entries.", file=sys.stderr)
        return 1
    counts = Counter(p.category for p in papers)
    groups = Counter(p.group for p in papers)
    print(f"papers check: {len(papers)} entries OK ({groups['bone suppression']} bone suppression, "
          f"{groups['adjacent field']} adjacent field).")
    print("  " + ", ".join(f"{c} {counts[c]}" for c in CATEGORIES if counts[c]))
    return 0


def _run_build(args: argparse.Namespace) -> int:
    try:
        if args.check:
            index = Path(args.output) if args.output else Path(args.folder) / INDEX_NAME
            expected = render_index(load_papers(args.folder), figures=list(FIGURE_FILES))
            if not index.exists() or index.read_text(encoding="utf-8") != expected:
                print(f"{display_path(index)} is out of date; run: python -m bs_lib papers build",
                      file=sys.stderr)
                return 1
            print(f"{display_path(index)} is up to date.")
            return 0
        target = build_index(args.folder, args.output, figures=not args.no_figures)
    except PaperDatabaseError as error:
        _print_problems(error.problems)
        print(f"papers build: fix the {len(error.problems)} error(s) above first.", file=sys.stderr)
        return 1
    print(f"wrote {display_path(target)}" + ("" if args.no_figures else
                                         f" and {display_path(Path(args.folder) / FIGURES_DIR_NAME)}/"))
    return 0


def _run_new(args: argparse.Namespace) -> int:
    fields = _fields_from_args(args)
    if fields is None:
        return 2
    links = {kind: getattr(args, kind) for kind in ("arxiv", "doi") if getattr(args, kind)}
    try:
        path, problems = new_entry(
            args.folder, fields.pop("id"), **fields, datasets=args.datasets, code=args.code, links=links,
            evidence=args.evidence,
        )
    except PaperDatabaseError as error:
        _print_problems(error.problems)
        print("papers new: nothing written; fix the flags named above.", file=sys.stderr)
        return 1
    except FileExistsError as error:
        print(f"papers new: {error}", file=sys.stderr)
        return 1
    print(f"wrote {display_path(path)} ({len(problems)} TODO line(s) in its summary). Next: write the summary, "
          "add metrics and links, then run: python -m bs_lib papers check && python -m bs_lib papers build")
    return 0


def _fields_from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """The required fields from flags, asking for the missing ones when stdin is a terminal."""
    authors = [a.strip() for given in (args.authors or []) for a in given.split(";") if a.strip()]
    fields: dict[str, Any] = {"title": args.title, "authors": authors or None, "year": args.year,
                              "venue": args.venue, "category": args.category}
    missing = [name for name, value in fields.items() if not value]
    if missing and not sys.stdin.isatty():
        flags = " ".join(f"--{name}" for name in missing)
        print(f"papers new: missing {flags}; give them as flags (or run in a terminal to be asked).",
              file=sys.stderr)
        return None
    prompts = {
        "title": "Title: ",
        "authors": 'Authors, separated by ";" (e.g. "M. Gusarev; R. Kuleev; et al."): ',
        "year": f"Year ({YEAR_MIN}-{YEAR_MAX}): ",
        "venue": 'Venue ("arXiv" for preprints, "unknown" if not known): ',
        "category": f"Category ({', '.join(CATEGORIES)}): ",
    }
    for name in missing:
        answer = input(prompts[name]).strip()
        fields[name] = [a.strip() for a in answer.split(";") if a.strip()] if name == "authors" else answer
    try:
        fields["year"] = int(fields["year"])
    except (TypeError, ValueError):
        print(f"papers new: --year must be an integer between {YEAR_MIN} and {YEAR_MAX}, "
              f"got {fields['year']!r}.", file=sys.stderr)
        return None
    entry_id = args.id
    if not entry_id and sys.stdin.isatty():
        suggestion = suggest_id(fields["authors"] or [], fields["year"])
        entry_id = input(f"Id [{suggestion}]: ").strip() or suggestion
    fields["id"] = entry_id
    return fields
