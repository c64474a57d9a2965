"""Build of the C extension csp_ext; metadata lives in pyproject.toml."""
import glob
import os

from setuptools import Extension, setup
from setuptools.command.build_py import build_py


class build_py_with_stub(build_py):
    """Also puts csp_ext.pyi (the C module's types) beside csp_ext's .so: a
    top-level module has no package whose package data could carry it."""

    def run(self):
        super().run()
        self.copy_file("csp_ext.pyi", os.path.join(self.build_lib, "csp_ext.pyi"))


# -fvisibility=hidden: calls between the core's files bind directly, not through
# the PLT (PyInit_csp_ext is exported by PyMODINIT_FUNC).
extra_compile_args = ["-Wall", "-Wextra", "-std=c11", "-D_GNU_SOURCE", "-fvisibility=hidden"]
extra_link_args = []
# PYCSP_SANITIZE=1 builds with AddressSanitizer and UBSan for the sanitizer test target;
# PYCSP_SANITIZE=thread with ThreadSanitizer (.ci/sanitize thread).
sanitize = os.environ.get("PYCSP_SANITIZE")
if sanitize == "thread":
    extra_compile_args += ["-fsanitize=thread", "-fno-omit-frame-pointer", "-O1", "-g"]
    extra_link_args += ["-fsanitize=thread"]
elif sanitize:
    extra_compile_args += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
    extra_link_args += ["-fsanitize=address,undefined"]
else:
    extra_compile_args += os.environ.get("PYCSP_OPT", "-O2").split()

define_macros = []
include_dirs = ["csp_ext"]  # sources include "csp.h", "shared/shm.h", ...
try:  # the greenlets scheduler needs greenlet.h at build time (a build requirement)
    import greenlet

    header_dir = os.path.dirname(greenlet.__file__)
    if os.path.exists(os.path.join(header_dir, "greenlet.h")):
        include_dirs.append(header_dir)
        define_macros.append(("CSP_HAVE_GREENLET", "1"))
except ImportError:
    pass

setup(
    cmdclass={"build_py": build_py_with_stub},
    ext_modules=[
        Extension(
            "csp_ext",
            sources=sorted(glob.glob("csp_ext/**/*.c", recursive=True)),
            depends=sorted(glob.glob("csp_ext/**/*.h", recursive=True)),
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
            include_dirs=include_dirs,
            define_macros=define_macros,
        )
    ],
)
