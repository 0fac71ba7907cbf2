"""Only the wheel's tag lives here (the metadata is in pyproject.toml).

`make wheel` (bindings/python/build-wheel.sh) builds from a copy of this directory with
libdocauth.so inside the package: that wheel is a platform wheel, py3-none-<platform>, since
the package is pure Python around a C library and works with any Python 3 (as wasmtime-py's
wheels). Without the library (the development venv's editable install) it stays pure.
"""

from pathlib import Path
from typing import Tuple

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.dist import Distribution

BUNDLED_LIBRARY = Path(__file__).resolve().parent / "src" / "docauth" / "libdocauth.so"


class LibraryDistribution(Distribution):
    """Carries a native library: installed to platlib, the wheel is not pure."""

    def has_ext_modules(self) -> bool:
        return BUNDLED_LIBRARY.is_file()


class PlatformWheel(bdist_wheel):  # type: ignore[misc]
    def get_tag(self) -> Tuple[str, str, str]:
        python, abi, platform = super().get_tag()
        if BUNDLED_LIBRARY.is_file():
            return "py3", "none", platform  # any Python 3: the library is not an extension
        return python, abi, platform


setup(distclass=LibraryDistribution, cmdclass={"bdist_wheel": PlatformWheel})
