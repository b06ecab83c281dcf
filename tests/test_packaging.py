"""Install metadata agrees with itself: pyproject.toml, environment.yml, README and CI."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

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
