"""Builds the compiled kernels with CMake (see CMakeLists.txt); metadata lives in pyproject.toml.

Extra CMake options come from the CMAKE_ARGS environment variable, for example
CMAKE_ARGS="-DUNICR_CUDA=OFF" or CMAKE_ARGS="-DCMAKE_CUDA_ARCHITECTURES=90".
"""
import os
import shutil
import shlex
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent.resolve()


class CMakeExtension(Extension):
    """A placeholder extension: CMake builds every module into the package folder."""

    def __init__(self, name):
        super().__init__(name, sources=[])


def cuda_module_expected():
    """True when CMake will build _cuda: nvcc is findable and UNICR_CUDA is not OFF."""
    if "-DUNICR_CUDA=OFF" in os.environ.get("CMAKE_ARGS", ""):
        return False
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or ""
    return bool(shutil.which("nvcc") or (cuda_home and Path(cuda_home, "bin", "nvcc").exists()))


class CMakeBuild(build_ext):
    """One CMake run builds every module; later build_extension calls find them built."""

    _built = False

    def build_extension(self, ext):
        if CMakeBuild._built:
            return
        CMakeBuild._built = True
        out_dir = Path(self.get_ext_fullpath(ext.name)).parent.resolve()
        build_dir = Path(self.build_temp).resolve() / "cmake"
        build_dir.mkdir(parents=True, exist_ok=True)
        cfg = "Debug" if self.debug else "Release"
        args = [
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DCMAKE_BUILD_TYPE={cfg}",
            "-G", "Ninja",
        ]
        args += shlex.split(os.environ.get("CMAKE_ARGS", ""))
        subprocess.run(["cmake", str(ROOT), *args], cwd=build_dir, check=True)
        jobs = str(os.cpu_count() or 2)
        subprocess.run(["cmake", "--build", ".", "-j", jobs], cwd=build_dir, check=True)


setup(
    ext_modules=[CMakeExtension("unicr_fast._cpu")]
    + ([CMakeExtension("unicr_fast._cuda")] if cuda_module_expected() else []),
    cmdclass={"build_ext": CMakeBuild},
)
