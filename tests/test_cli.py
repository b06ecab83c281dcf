"""The command line: ``python -m bs_lib`` and the bootstrap script ``course.py``."""

import subprocess
import sys
from pathlib import Path

import pytest

from bs_lib import cli

ROOT = Path(__file__).resolve().parent.parent


def test_help_lists_every_command(capsys):
    assert cli.main([]) == 2
    text = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in text


def test_an_unknown_command_is_an_error_that_names_the_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["reprot"])
    assert exit_info.value.code == 2
    assert "unknown command 'reprot'" in capsys.readouterr().err


def test_info_prints_the_environment_and_profiles(capsys):
    assert cli.main(["info"]) == 0
    text = capsys.readouterr().out
    assert "torch" in text and "smoke" in text and "full" in text


def test_python_dash_m_runs_the_same_command_line():
    done = subprocess.run([sys.executable, "-m", "bs_lib", "report", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--profile" in done.stdout


def test_every_registered_command_module_has_the_command_interface():
    import importlib

    for name, (module_name, _) in cli.COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            pytest.fail(f"command {name!r} points at {module_name}, which does not exist")
        assert callable(module.add_arguments) and callable(module.run), name


def test_course_script_explains_itself_and_rejects_unknown_tasks():
    shown = subprocess.run([sys.executable, "course.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert shown.returncode == 0 and "python3 course.py test" in shown.stdout
    wrong = subprocess.run([sys.executable, "course.py", "tset"], cwd=ROOT, capture_output=True, text=True)
    assert wrong.returncode == 2


def test_course_script_treats_no_collected_tests_as_a_failure(capsys):
    sys.path.insert(0, str(ROOT))
    try:
        import course
    finally:
        sys.path.remove(str(ROOT))
    code = course.run_tests(Path(sys.executable), ["tests/test_config.py", "-k", "no_such_test_name"])
    assert code == 1
    assert "collected no tests" in capsys.readouterr().out
