"""Every course notebook keeps the course's conventions, and the checker catches breaches."""

import re
import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest

from bs_lib.course import notebooks

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT_REPOSITORY = re.search(r'^Repository = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
COURSE = notebooks.course_notebooks()


def test_the_course_has_notebooks():
    assert COURSE, "no notebooks/NN_topic.ipynb found"


@pytest.mark.parametrize("ipynb", COURSE, ids=[p.stem for p in COURSE])
def test_course_notebook_follows_the_conventions(ipynb):
    assert notebooks.check_notebook(ipynb) == []


def test_every_paired_script_has_its_notebook():
    scripts = {p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py")}
    assert scripts == {p.stem for p in COURSE}


def test_the_readme_course_map_lists_every_notebook():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for ipynb in COURSE:
        assert f"notebooks/{ipynb.name}" in readme, f"README course map misses {ipynb.name}"
        assert notebooks.colab_url(ipynb) in readme, f"README has no Colab link for {ipynb.name}"


# --------------------------------------------------------------------------- the checker itself


@pytest.fixture
def fresh(tmp_path):
    """A notebook pair made from the template, as a contributor would start one."""
    return notebooks.new_notebook(42, "fresh_topic", "A fresh topic", notebooks_dir=tmp_path)


def _written(nb):
    """The contributor's own words in place of every placeholder sentence of the template."""
    for cell in nb.cells:
        for phrase in notebooks.TEMPLATE_PLACEHOLDERS:
            cell.source = cell.source.replace(phrase, "Words of our own")


def test_a_notebook_made_from_the_template_passes_once_written(fresh):
    problems = notebooks.check_notebook(fresh)
    assert problems and all("template's placeholder" in p for p in problems), problems
    assert "42 · A fresh topic" in fresh.with_suffix(".py").read_text()
    assert _breach(fresh, _written) == []


def test_every_placeholder_is_the_template_s_own_text():
    template = notebooks.TEMPLATE.read_text(encoding="utf-8")
    missing = [p for p in notebooks.TEMPLATE_PLACEHOLDERS if p not in " ".join(template.replace("# ", "").split())]
    assert not missing, f"not in notebooks/_template.py (the rule would never fire): {missing}"


def test_new_notebook_never_overwrites_and_checks_its_name(fresh):
    with pytest.raises(FileExistsError, match="already exists"):
        notebooks.new_notebook(42, "fresh_topic", "Again", notebooks_dir=fresh.parent)
    with pytest.raises(ValueError, match="not a course notebook name"):
        notebooks.new_notebook(43, "Bad-Name", "x", notebooks_dir=fresh.parent)


def _breach(fresh, change):
    """Apply ``change`` to both files of the pair so only the breach differs."""
    nb = jupytext.read(fresh)
    change(nb)
    jupytext.write(nb, fresh, fmt="ipynb")
    jupytext.write(nb, fresh.with_suffix(".py"), fmt="py:percent")
    return notebooks.check_notebook(fresh)


def _markdown(text):
    return nbformat.v4.new_markdown_cell(text)


def _code_cell(nb, needle):
    return next(c for c in nb.cells if c.cell_type == "code" and needle in c.source)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda nb: nb.cells[0].update(source=nb.cells[0].source.replace("42_fresh_topic", "41_other")),
         "badge points at"),
        (lambda nb: nb.cells[0].update(source=nb.cells[0].source.replace("## Learning goals", "## Goals")),
         "Learning goals"),
        (lambda nb: _code_cell(nb, "PROFILE =").metadata.update(tags=[]), "tagged 'parameters'"),
        (lambda nb: _code_cell(nb, "PROFILE =").update(source="SEED = 0"), "does not declare PROFILE"),
        (lambda nb: _code_cell(nb, "config.setup(").update(source="print(1)"), "must call config.setup"),
        (lambda nb: _code_cell(nb, "check(run").update(source="x = torch.ones(1).to('cuda')"),
         "hard-codes a CUDA device"),
        (lambda nb: nb.cells.pop(), "last sections must be"),
        (lambda nb: nb.metadata["kernelspec"].update(name="conda-env-xray"), "kernelspec"),
        (lambda nb: _code_cell(nb, "check(run").update(source="assert run.profile.name == PROFILE"),
         "line 1: a bare assert"),
        (lambda nb: _code_cell(nb, "check(run").update(source="for name in 'ab':\n    if name:\n        assert name"),
         "line 3: a bare assert"),
        (lambda nb: nb.cells.insert(1, _markdown("# 42 · Again\n\nA second opening.")), "2 titles"),
        (lambda nb: nb.cells.insert(1, _markdown("| profile | hardware | run time |\n|---|---|---|")),
         "2 run-time tables"),
    ],
    ids=["badge", "goals", "parameters-tag", "profile", "setup-call", "cuda", "closing", "kernel", "assert",
         "nested-assert", "second-title", "second-table"],
)
def test_the_checker_catches_each_breach(fresh, change, expected):
    problems = _breach(fresh, change)
    assert any(expected in p for p in problems), problems


def test_asserts_inside_a_function_are_fine():
    source = "%matplotlib inline\ndef helper(x):\n    assert x > 0\n    return x\n\ncheck(helper(1) == 1, 'one')"
    assert notebooks.bare_asserts(source) == []
    assert notebooks.bare_asserts("with open('f') as f:\n    assert f\nassert True") == [2, 3]
    assert notebooks.bare_asserts("not python (") == []


def test_the_checker_catches_placeholder_text(fresh):
    problems = " | ".join(notebooks.check_notebook(fresh))
    for phrase in notebooks.TEMPLATE_PLACEHOLDERS:
        assert phrase in problems


def test_the_checker_catches_committed_outputs_and_editor_metadata(fresh):
    nb = nbformat.read(fresh, as_version=4)
    cell = _code_cell(nb, "check(run")
    cell.execution_count = 3
    cell.outputs = [nbformat.v4.new_output("stream", text="hello")]
    cell.metadata["colab"] = {"base_uri": "https://localhost:8080/"}
    nb.metadata["widgets"] = {}
    nbformat.write(nb, fresh)
    problems = " | ".join(notebooks.check_stripped(nbformat.read(fresh, as_version=4)))
    assert "has outputs" in problems and "metadata other than tags" in problems and "'widgets'" in problems


def test_the_checker_catches_a_pair_out_of_sync(fresh):
    script = fresh.with_suffix(".py")
    script.write_text(script.read_text().replace("check(run.profile.name == PROFILE", "check(True"))
    problems = notebooks.check_pair(fresh)
    assert problems and re.search(r"differ at cell \d+; run: jupytext --sync", problems[0])
    script.unlink()
    assert "is missing" in notebooks.check_pair(fresh)[0]


def test_the_template_and_a_course_notebook_share_the_setup_cell(fresh):
    """The install cell is copied from the template; a course notebook must not drift from it."""
    template_setup = _code_cell(jupytext.read(fresh), 'find_spec("bs_lib")').source
    for ipynb in COURSE:
        assert _code_cell(jupytext.read(ipynb), 'find_spec("bs_lib")').source == template_setup, ipynb.name


def test_check_command_reports_failures(fresh, capsys):
    shutil.copy(fresh, fresh.with_name("43_copy.ipynb"))
    code = notebooks.run(type("Args", (), {"action": "check", "paths": [fresh.with_name("43_copy.ipynb")]})())
    assert code == 1
    assert "43_copy.py is missing" in capsys.readouterr().out


# --------------------------------------------------------------------------- one home URL


def test_every_badge_and_install_cell_points_at_the_repository_of_pyproject():
    from bs_lib import home

    assert home.repository_url() == PYPROJECT_REPOSITORY
    assert home.sync_addresses() == {}, "run: python -m bs_lib notebooks urls --write"


def test_a_changed_address_is_rewritten_everywhere_it_is_repeated(tmp_path, monkeypatch):
    from bs_lib import home

    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns("*.ipynb_checkpoints"))
    monkeypatch.setattr(home, "repository_url", lambda: "https://github.com/someone-else/bones")
    stale = home.sync_addresses(tmp_path)
    assert tmp_path / "README.md" in stale and len(stale) == 1 + 2 * len(COURSE) + 1  # README, pairs, template
    home.sync_addresses(tmp_path, write=True)
    assert home.sync_addresses(tmp_path) == {}
    text = (tmp_path / "notebooks" / "03_autoencoders_cnns.ipynb").read_text()
    assert "git+https://github.com/someone-else/bones" in text
    assert "colab.research.google.com/github/someone-else/bones/blob/main/notebooks/03_autoencoders_cnns" in text
    assert "[the course site](https://someone-else.github.io/bones/)" in (tmp_path / "README.md").read_text()
