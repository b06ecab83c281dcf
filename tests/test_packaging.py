"""Install metadata agrees with itself (pyproject.toml, environment.yml, README, CI); the wheel carries the course."""

import functools
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from bs_lib import resources
from bs_lib.course import survey

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _requirement_name(text: str) -> str:
    return re.split(r"[\s<>=!~;\[]", text.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_installs_the_project_and_declares_nothing_twice():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"][0] == "conda-forge" and "defaults" not in env["channels"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    python = next(d for d in conda if d.startswith("python"))
    major, minor = map(int, python.split("=")[1].split(".")[:2])
    floor = tuple(map(int, re.search(r">=\s*(\d+)\.(\d+)", PYPROJECT["project"]["requires-python"]).groups()))
    assert (major, minor) >= floor, "environment.yml pins a Python older than pyproject allows"
    declared = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    conda_names = {_requirement_name(d.split("=")[0]) for d in conda} - {"python", "pip"}
    conda_names = {"torch" if name == "pytorch" else name for name in conda_names}
    assert conda_names <= declared, f"environment.yml installs {conda_names - declared}, unknown to pyproject"
    extras = re.fullmatch(r'-e\s+"?\.\[([\w,-]+)\]"?', pip[0]).group(1).split(",")
    assert set(extras) <= set(PYPROJECT["project"]["optional-dependencies"])


def test_torch_is_never_pinned_for_users():
    torch = next(r for r in PYPROJECT["project"]["dependencies"] if _requirement_name(r) == "torch")
    assert "==" not in torch and "<" not in torch


def test_packages_that_break_the_cpu_torch_are_not_dependencies():
    everything = list(PYPROJECT["project"]["dependencies"])
    for group in PYPROJECT["project"]["optional-dependencies"].values():
        everything += group
    names = {_requirement_name(r) for r in everything}
    assert not names & {"torchvision", "lpips", "torch-fidelity"}


def test_the_user_named_packages_are_all_declared():
    everything = list(PYPROJECT["project"]["dependencies"])
    for group in PYPROJECT["project"]["optional-dependencies"].values():
        everything += group
    names = {_requirement_name(r) for r in everything}
    named = {"jupyterlab", "torch", "matplotlib", "seaborn", "scikit-image", "kaggle", "jupytext", "nbval",
             "papermill", "monai", "accelerate"}
    assert named <= names, named - names


def _quickstart_commands() -> list[str]:
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", section, re.DOTALL).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_quickstart_is_exactly_two_commands_and_ci_runs_the_second():
    commands = _quickstart_commands()
    assert len(commands) == 2, commands
    assert commands[0].endswith("report") and commands[1].endswith("test")
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines(), "the CI script must run the README's test command verbatim"


def test_the_readme_states_measured_run_times():
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"\d+ min", section), "write the measured times of both commands in the Quickstart"


def test_ruff_is_clean():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_precommit_config_has_sync_strip_and_lint_hooks():
    hooks = {h["id"] for repo in yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]
             for h in repo["hooks"]}
    assert {"jupytext-sync", "nbstripout", "ruff"} <= hooks


# --------------------------------------------------------------------------- the files a wheel carries

#: What a build never reads: anywhere in the checkout, and only at its top (downloaded data, outputs).
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", ".cache", ".*_cache", "__pycache__", "*.egg-info")
NOT_SOURCES_AT_TOP = {"build", "dist", "data", "reports"}


def _not_sources(folder: str, names: list[str]) -> set[str]:
    ignored = NOT_SOURCES(folder, names)
    return ignored | (NOT_SOURCES_AT_TOP & set(names)) if Path(folder) == ROOT else ignored


@functools.cache
def build_wheel(destination: Path) -> Path:
    """The course's wheel, built once per test process from a copy of the checkout, offline.

    Building from a copy keeps the checkout untouched (``build/``, ``*.egg-info``),
    however many people build at once. ``--no-build-isolation`` reuses this
    environment's setuptools instead of downloading one.
    """
    source = destination / "source"
    shutil.copytree(ROOT, source, ignore=_not_sources)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "--quiet", "--wheel-dir", str(destination / "wheel"), str(source)],
                   check=True, capture_output=True, text=True)
    return next((destination / "wheel").glob("bs_lib-*.whl"))


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def wheel_files(wheel) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def _course_path_arguments() -> set[str]:
    """Every literal ``course_path("...")`` of the notebooks and the library: the course files read by name."""
    sources = [*(ROOT / "notebooks").glob("[0-9][0-9]_*.py"), *(ROOT / "bs_lib").rglob("*.py")]
    return {match for path in sources
            for match in re.findall(r"course_path\(\s*[\"']([^\"']+)[\"']", path.read_text(encoding="utf-8"))}


def test_the_wheel_carries_exactly_the_course_files(wheel_files):
    packaged = {name.removeprefix("bs_lib/_course/") for name in wheel_files if name.startswith("bs_lib/_course/")}
    expected = set(resources.course_files(ROOT))
    assert packaged == expected, (f"missing from the wheel: {sorted(expected - packaged)}; "
                                  f"in the wheel but not in the clone: {sorted(packaged - expected)}")


def test_the_wheel_carries_every_paper_the_registry_and_the_configs(wheel_files):
    papers = {p.name for p in survey.entry_files(ROOT / "papers")}
    assert len(papers) >= 80 and {f"bs_lib/_course/papers/{name}" for name in papers} <= wheel_files
    assert "bs_lib/data/registry.yaml" in wheel_files
    configs = {f"bs_lib/configs/{p.name}" for p in (ROOT / "bs_lib" / "configs").glob("*.yaml")}
    assert configs and configs <= wheel_files


def test_every_course_file_read_by_name_is_in_the_wheel(wheel_files):
    read = _course_path_arguments()
    assert "benchmarks/results/benchmark_smoke_128.json" in read  # notebook 09's committed table
    for relative in read:
        assert resources.is_shipped(relative), f"course_path({relative!r}): add it to resources.COURSE_FILES"
        inside = f"bs_lib/_course/{relative}"
        assert any(name == inside or name.startswith(inside + "/") for name in wheel_files), relative


def test_notebooks_do_not_read_the_repository_layout():
    """A notebook on Colab has no clone beside it: course files come through ``resources.course_path``."""
    for script in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        code = [line for line in script.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("#")]
        offending = [line.strip() for line in code if "REPO_ROOT" in line or "__file__" in line]
        assert not offending, f"{script.name} reads the repository layout: {offending}"


def test_building_leaves_no_copies_in_the_source_tree(wheel):
    assert not (ROOT / "bs_lib" / resources.PACKAGED_DIR.name).exists()


# --------------------------------------------------------------------------- finding a course file


def test_a_clone_reads_its_own_files():
    assert resources.in_source_tree()
    assert resources.course_path("papers") == ROOT / "papers" == survey.PAPERS_DIR
    assert resources.course_path("datasets/jsrt.md") == ROOT / "datasets" / "jsrt.md"


def test_an_installed_package_reads_its_packaged_copy(tmp_path, monkeypatch):
    packaged = tmp_path / "site-packages" / "bs_lib" / "_course"
    (packaged / "papers").mkdir(parents=True)
    (packaged / "papers" / "a-2020.yaml").write_text("id: a-2020\n")
    monkeypatch.setattr(resources, "SOURCE_ROOT", tmp_path / "site-packages")  # no pyproject.toml there
    monkeypatch.setattr(resources, "PACKAGED_DIR", packaged)
    assert not resources.in_source_tree()
    assert resources.course_path("papers/a-2020.yaml") == packaged / "papers" / "a-2020.yaml"
    with pytest.raises(FileNotFoundError, match=r"papers/b-2021\.yaml"):
        resources.course_path("papers/b-2021.yaml")


def test_a_file_no_wheel_carries_is_refused_even_in_a_clone():
    assert (ROOT / "benchmarks" / "bs_ldm_speed.py").is_file()
    for relative in ("benchmarks/bs_ldm_speed.py", "papers/figures/datasets.png", "../README.md", "/etc/passwd"):
        with pytest.raises(ValueError, match="COURSE_FILES"):
            resources.course_path(relative)
