"""Build step for unitprune's C kernels (everything else is in pyproject.toml).

The kernels in src/unitprune/csrc/ are plain C99 with no Python C API: they are compiled into a
plain shared library ``unitprune/_unitkernels<ext-suffix>`` and loaded with ctypes
(:mod:`unitprune.kernels`), so the very same .c files compile unchanged into firmware.
The build is optional: without a C compiler the package still installs and
``UnITConfig(backend="auto")`` falls back to the PyTorch reference path with a warning.
"""

from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CSRC = Path("src") / "unitprune" / "csrc"

# -O3 vectorises the lane loops. No -ffast-math: it would change rounding (bit-identical
# thresholds) and NaN semantics. -fno-math-errno only drops errno bookkeeping (no libm is used).
GCC_LIKE_FLAGS = ["-std=c99", "-O3", "-fno-math-errno", "-Wall", "-Wextra"]
MSVC_FLAGS = ["/O2", "/fp:precise"]


class BuildSharedLibrary(build_ext):
    """build_ext for a plain shared library: no ``PyInit_`` export, compiler-specific flags."""

    def get_export_symbols(self, ext):
        return ext.export_symbols

    def build_extension(self, ext):
        flags = MSVC_FLAGS if self.compiler.compiler_type == "msvc" else GCC_LIKE_FLAGS
        ext.extra_compile_args = list(flags)
        super().build_extension(ext)


kernels = Extension(
    "unitprune._unitkernels",
    sources=sorted(str(path) for path in CSRC.glob("*.c")),
    include_dirs=[str(CSRC)],
    depends=sorted(str(path) for path in CSRC.glob("*.h")),
    # The host library counts the int8 kernels' MACs (the tests compare them with the integer
    # reference); firmware builds leave UNIT_S8_COUNTS undefined and have no counting code.
    define_macros=[("UNIT_S8_COUNTS", "1")],
    optional=True,
)

setup(ext_modules=[kernels], cmdclass={"build_ext": BuildSharedLibrary})
