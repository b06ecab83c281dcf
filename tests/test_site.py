"""The static site: one page per executed notebook, figures inside, solutions folded, the course map as home."""

import re
from pathlib import Path

import jupytext
import pytest

from bs_lib import home
from bs_lib.cli import main
from bs_lib.course import notebooks, site

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _course(folder: Path) -> None:
    """Two tiny notebooks from the template; the second draws a figure and has a solution cell."""
    notebooks.new_notebook(0, "first", "First", notebooks_dir=folder)
    second = notebooks.new_notebook(1, "second", "Second", notebooks_dir=folder)
    nb = jupytext.read(second)
    figure = jupytext.reads("# %%\nimport matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()\n",
                            fmt="py:percent").cells[0]
    solution = jupytext.reads('# %% tags=["solution"]\nprint("the answer is", 6 * 7)\n', fmt="py:percent").cells[0]
    nb.cells[-1:-1] = [figure, solution]
    jupytext.write(nb, second, fmt="ipynb")


@pytest.mark.slow
def test_the_site_of_a_tiny_course_has_a_page_per_notebook_with_its_figures(tmp_path):
    source, output = tmp_path / "notebooks", tmp_path / "site"
    source.mkdir()
    _course(source)
    assert main(["site", "--output", str(output), "--notebooks-dir", str(source)]) == 0
    assert sorted(p.name for p in output.iterdir()) == ["00_first.html", "01_second.html", "index.html",
                                                          "notebook.css", "site.css"]
    second = (output / "01_second.html").read_text(encoding="utf-8")
    assert re.search(r'<img[^>]+src="data:image/png;base64,', second), "the figure is not embedded"
    assert "config.setup(PROFILE" in re.sub(r"<[^>]+>", "", second)  # the code is shown, not only its results
    folded = second[second.index('<details class="solution">'):]
    assert "the answer is" in folded[:folded.index("</details>")] and "42" in folded[:folded.index("</details>")]
    assert 'href="notebook.css"' in second and 'href="index.html"' in second
    assert 'href="../' not in second and f'href="{home.repository_url()}/blob/main/papers/' in second
    index = (output / "index.html").read_text(encoding="utf-8")
    assert 'href="00_first.html"' in index and 'href="01_second.html"' in index
    assert "First" in index and "Second" in index and "stopped with" not in index

    again = tmp_path / "again"  # the report's executed notebooks are reused, not run again
    executed = output.parent / "executed"
    executed.mkdir()
    from bs_lib.course.report import run_report

    run_report(source, executed, "smoke", only=["01"])
    pages = site.build_site(again, executed_dir=executed)
    assert [page.file for page in pages] == ["01_second.html"]
    assert (again / "01_second.html").read_text(encoding="utf-8").count("data:image/png;base64,") >= 1


def test_the_home_page_is_the_readme_s_course_map():
    entries = site.course_map(README)
    assert [e.number for e in entries] == [f"{n:02d}" for n in range(10)]
    assert entries[0].notebook == "00_survey" and entries[0].title == "The field at a glance"
    assert entries[9].teaches.startswith("every method, one split")
    pages = [site.Page(e.notebook, f"{e.number} · {e.title}", e.teaches, None) for e in entries]
    pages[4] = site.Page(pages[4].notebook, pages[4].title, pages[4].teaches, "RuntimeError: the GAN broke")
    index = site.index_page(pages, README, "smoke")
    title, _ = site.readme_opening(README)
    assert f"<title>{title}</title>" in index
    for entry in entries:
        assert f'href="{entry.notebook}.html"' in index and home.colab_url(f"{entry.notebook}.ipynb") in index
    assert "<strong>bone suppression</strong>" in index  # the README's opening, rendered from Markdown
    assert index.count("stopped with") == 1 and "RuntimeError: the GAN broke" in index


def test_pages_without_a_course_map_row_take_the_notebook_s_own_title(tmp_path):
    _course(tmp_path)
    pages = site.plan_pages(sorted(tmp_path.glob("*.ipynb")), site.course_map(README))
    assert [(p.notebook, p.title, p.error) for p in pages] == [("00_first", "00 · First", None),
                                                               ("01_second", "01 · Second", None)]


def test_the_readme_links_the_site_of_the_repository():
    assert home.site_url() == f"https://{home.repository().split('/')[0].lower()}.github.io/" \
                              f"{home.repository().split('/')[1]}/"
    assert home.site_url() in README, "the README does not link the course site; run: python -m bs_lib " \
                                      "notebooks urls --write"


def test_the_workflow_builds_the_site_with_the_command_and_publishes_it_with_pages():
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "site.yml").read_text(encoding="utf-8"))
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    commands = " ".join(step.get("run", "") for step in steps)
    actions = {step["uses"].split("@")[0] for step in steps if "uses" in step}
    assert "download.pytorch.org/whl/cpu" in commands and "pip install -e .[dev]" in commands
    assert "python -m bs_lib site --output site" in commands
    assert {"actions/upload-pages-artifact", "actions/deploy-pages"} <= actions
    assert workflow[True]["push"]["branches"] == ["main"]  # YAML reads the key ``on`` as True
