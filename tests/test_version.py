"""The version is written once (pycsp/_version.py): the installed distribution's
metadata, ``pycsp.__version__`` and every backend's ``version`` tuple agree."""
import importlib
import importlib.metadata
import re

import pytest

import pycsp

MODULES = ["threads", "greenlets", "processes", "parallel"]


def test_version_is_the_distributions():
    try:
        installed = importlib.metadata.version("pycsp")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("pycsp is imported from a checkout that is not installed (no metadata)")
    assert pycsp.__version__ == installed


def test_version_is_a_release_number():
    assert re.fullmatch(r"\d+\.\d+\.\d+", pycsp.__version__), pycsp.__version__


@pytest.mark.parametrize("name", MODULES)
def test_version_tuple_starts_with_it(name):
    """API.md: ``version`` is (major, minor, patch, backend_name); pycsp.parallel
    keeps PyCSP 0.9.2's shape with ``"parallel"`` as its name."""
    module = importlib.import_module(f"pycsp.{name}")
    major, minor, patch = (int(part) for part in pycsp.__version__.split("."))
    assert module.version == (major, minor, patch, name)


def test_plain_import_is_threads():
    assert pycsp.version == pycsp.threads.version
