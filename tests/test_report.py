"""The report job: papermill execution, HTML, the index, failures and misspelled parameters."""

import json

import jupytext
import papermill
import pytest

from bs_lib.config import UnknownParameterError
from bs_lib.course import listing, notebooks, report


def _course(folder, failing=False):
    """Two tiny course notebooks from the template; the second may fail on purpose."""
    first = notebooks.new_notebook(0, "first", "First", notebooks_dir=folder)
    second = notebooks.new_notebook(1, "second", "Second", notebooks_dir=folder)
    if failing:
        nb = jupytext.read(second)
        cell = next(c for c in nb.cells if c.cell_type == "code" and "check(run.profile" in c.source)
        cell.source = 'raise RuntimeError("the phantom broke")'
        jupytext.write(nb, second, fmt="ipynb")
    return first, second


@pytest.mark.slow
def test_report_runs_everything_reports_failures_and_keeps_going(tmp_path):
    source, output = tmp_path / "notebooks", tmp_path / "reports"
    source.mkdir()
    _course(source, failing=True)
    results = report.run_report(source, output, "smoke", {"SEED": 1})
    assert [(r.notebook, r.status) for r in results] == [("00_first.ipynb", "ok"), ("01_second.ipynb", "failed")]
    assert results[1].error == "RuntimeError: the phantom broke"
    for name in ("00_first", "01_second"):
        assert (output / f"{name}.ipynb").exists()
        html = (output / f"{name}.html").read_text()
        assert "config.setup(PROFILE" not in html  # rendered without code
    index = (output / "index.html").read_text()
    assert "01_second.html" in index and "RuntimeError: the phantom broke" in index and "1 of 2 notebooks ok" in index
    summary = json.loads((output / "summary.json").read_text())
    assert summary["profile"] == "smoke" and [n["status"] for n in summary["notebooks"]] == ["ok", "failed"]
    executed = jupytext.read(output / "00_first.ipynb")
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "SEED = 1" in injected[0].source and 'PROFILE = "smoke"' in injected[0].source


def test_a_misspelled_parameter_fails_before_anything_runs(tmp_path):
    source, output = tmp_path / "notebooks", tmp_path / "reports"
    source.mkdir()
    _course(source)
    with pytest.raises(UnknownParameterError, match=r"00_first.ipynb has no parameter\(s\) \['SEDE'\]"):
        report.run_report(source, output, "smoke", {"SEDE": 1})
    assert not output.exists()


def test_only_selects_notebooks_by_prefix(tmp_path):
    _course(tmp_path)
    assert [p.name for p in listing.select_notebooks(tmp_path, ["01"])] == ["01_second.ipynb"]
    with pytest.raises(FileNotFoundError, match="starts with any of"):
        listing.select_notebooks(tmp_path, ["07"])


@pytest.mark.slow
def test_plain_papermill_with_a_misspelled_parameter_fails_inside_the_notebook(tmp_path):
    first, _ = _course(tmp_path)
    with pytest.raises(papermill.PapermillExecutionError) as failure:
        papermill.execute_notebook(str(first), str(tmp_path / "out.ipynb"), parameters={"PROFLE": "colab"},
                                   kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    assert failure.value.ename == "UnknownParameterError"
    assert "['PROFLE']" in failure.value.evalue


def test_parameter_values_are_parsed_like_papermill():
    assert [report._parse_value(v) for v in ("3", "0.5", "true", "None", "colab")] == [3, 0.5, True, None, "colab"]
