"""The command line: ``python -m bs_lib`` and the bootstrap script ``course.py``."""

import subprocess
import sys
from pathlib import Path

import pytest

from bs_lib import cli, home

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
    code = course.run_tests(Path(sys.executable), ["-n", "0", "tests/test_config.py", "-k", "no_such_test_name"])
    assert code == 1
    assert "collected no tests" in capsys.readouterr().out


# --------------------------------------------------------------------------- errors


def _sample_with_a_missing_checkpoint(tmp_path: Path) -> list[str]:
    """``sample`` arguments whose input exists but whose checkpoint folder does not: a CheckpointError."""
    image = tmp_path / "a.png"
    image.touch()
    return ["sample", str(tmp_path / "no-such-run"), str(image), "--output", str(tmp_path / "out")]


def test_a_known_error_is_one_line_and_exit_status_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bs_lib", *_sample_with_a_missing_checkpoint(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "no-such-run" in lines[0] and "is not a checkpoint folder" in lines[0]
    assert "Traceback" not in done.stderr


def test_debug_before_the_command_shows_the_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bs_lib", "--debug", *_sample_with_a_missing_checkpoint(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 1  # the interpreter's status for an uncaught exception
    assert "Traceback" in done.stderr and "CheckpointError" in done.stderr


def test_debug_after_the_command_raises_the_error(tmp_path):
    from bs_lib.engine import CheckpointError

    with pytest.raises(CheckpointError, match="no-such-run"):
        cli.main([*_sample_with_a_missing_checkpoint(tmp_path), "--debug"])


@pytest.mark.parametrize("argv, expected", [
    (["sample", "{tmp}/run", "{tmp}/missing.png", "--output", "{tmp}/out"], "missing.png does not exist"),
    (["train", "{tmp}/missing.yaml"], "missing.yaml does not exist"),
    (["train", "unet", "--set", "no_such_key=1", "--print-config"], "no_such_key"),
])
def test_user_errors_of_any_command_are_one_line(tmp_path, capsys, argv, expected):
    assert cli.main([arg.format(tmp=tmp_path) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err


def test_an_unknown_dataset_is_one_line(capsys):
    assert cli.main(["download", "no-such-dataset"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "'no-such-dataset'" in err


def test_a_bug_keeps_its_traceback_and_says_where_to_report_it(monkeypatch, capsys):
    def broken():
        return 1 / 0

    monkeypatch.setattr("bs_lib.config.environment_report", broken)
    assert cli.main(["info"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError" in err
    assert err.splitlines()[-1].endswith(home.issues_url())


def test_ctrl_c_is_one_line_and_exit_status_130(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr("bs_lib.config.environment_report", interrupted)
    assert cli.main(["info"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_one_line_keeps_a_short_message_whole_and_a_long_one_to_its_first_line():
    assert cli.one_line(ValueError("bad value.\n  set x to 1")) == "bad value. set x to 1"
    assert cli.one_line(ValueError("3 problems:\n" + "  problem\n" * 100)) == "3 problems:"
    assert cli.one_line(ValueError()) == "ValueError"
