"""Build script for the optional C accelerator; the metadata lives in pyproject.toml.

``hubbub._speedups`` is compiled when a C compiler is available. When it is not
(or the build fails for any reason), the package installs anyway and runs in
pure Python: :mod:`hubbub.speedups` picks the fallbacks. Set
``HUBBUB_NO_EXTENSIONS=1`` at build time to skip the extension entirely.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Build extensions, but never fail the installation because of them."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, missing headers ...
            self._warn(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._warn(exc)

    @staticmethod
    def _warn(exc: Exception) -> None:
        print(
            f"WARNING: hubbub's C accelerator was not built ({exc}); using pure Python.",
            file=sys.stderr,
        )


ext_modules = []
if os.environ.get("HUBBUB_NO_EXTENSIONS", "") in ("", "0") and sys.implementation.name == "cpython":
    compile_args = ["-O3"] if os.name != "nt" else []
    ext_modules.append(
        Extension(
            "hubbub._speedups",
            sources=["src/hubbub/_speedups.c"],
            depends=["src/hubbub/_payload.h"],
            extra_compile_args=compile_args,
            optional=True,
        )
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
