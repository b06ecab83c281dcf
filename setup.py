"""One build step beyond pyproject.toml: the package carries the course files its notebooks read.

The paper database, the dataset cards and the measured tables live at the top
of the repository, where contributors edit them. A student who installs the
course with pip gets the package alone, so every build of it (a wheel, ``pip
install .``, ``pip install git+...``) copies them into ``bs_lib/_course/``;
``bs_lib/resources.py`` lists them (``COURSE_FILES``) and finds them again at
run time. An editable install copies nothing: it reads the clone's own files.
"""

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _load_resources():
    """``bs_lib/resources.py`` loaded on its own (standard library only), without importing the package."""
    spec = importlib.util.spec_from_file_location("_bs_lib_resources", ROOT / "bs_lib" / "resources.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


resources = _load_resources()


class BuildPyWithCourseFiles(build_py):
    """``build_py`` that also copies the course files into the built package."""

    def _course_dir(self) -> Path:
        return Path(self.build_lib) / "bs_lib" / resources.PACKAGED_DIR.name

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = self._course_dir()
        shutil.rmtree(target, ignore_errors=True)  # a file deleted from the clone leaves the package too
        for relative in resources.course_files(ROOT):
            self.mkpath(str((target / relative).parent))
            self.copy_file(str(ROOT / relative), str(target / relative))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if self.editable_mode:
            return outputs
        return outputs + [str(self._course_dir() / relative) for relative in resources.course_files(ROOT)]

    def get_source_files(self) -> list[str]:
        """The package's sources and the course files: a source distribution carries both."""
        return super().get_source_files() + resources.course_files(ROOT)


setup(cmdclass={"build_py": BuildPyWithCourseFiles})
