"""docs/: the API reference stays complete and true.

Every public name (each module's ``__all__``) has a docstring of its own, which
names its parameters, and is in the reference: a directive of docs/**/*.rst
documents it (``.. autofunction:: pycsp.threads.Parallel``), or documents the
same object under another module's name (processes' ``retire`` is threads').
The programs of the getting-started page run and print what the page shows.
If Sphinx and the docs extra are installed (CI installs them), the site builds
with warnings as errors and its inventory lists every public name.
"""
import glob
import importlib
import inspect
import os
import re
import subprocess
import sys

import pytest

from conftest import BACKENDS, ROOT, _child_env

DOCS = os.path.join(ROOT, "docs")

# The modules a user imports names from; their __all__ is the public API.
PUBLIC_MODULES = ["pycsp.threads", "pycsp.greenlets", "pycsp.processes", "pycsp.parallel",
                  "pycsp.net", "pycsp.common.plugNplay", "pycsp.common.toolkit", "pycsp.common.trace",
                  "pycsp.csp"]

# ``.. autofunction:: pycsp.threads.Parallel``, ``.. py:data:: pycsp.threads.Skip``
DIRECTIVE = re.compile(r"^\.\. (auto\w+|py:\w+):: *([\w.]+)\s*$", re.MULTILINE)


def resolve(dotted):
    """The object that ``dotted`` (``package.module.attribute``) names."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def identity(obj):
    """What makes two public names the same thing: a bound method's function
    (each backend's Parallel is a method of its own runtime)."""
    return id(getattr(obj, "__func__", obj))


def documented():
    """{qualified name: object} of every directive in docs/**/*.rst."""
    found = {}
    for path in glob.glob(os.path.join(DOCS, "**", "*.rst"), recursive=True):
        with open(path, encoding="utf-8") as f:
            for _, target in DIRECTIVE.findall(f.read()):
                found[target] = resolve(target)
    return found


def is_data(obj):
    return not (inspect.isclass(obj) or callable(obj) or inspect.ismodule(obj))


def public_names():
    names = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            # pycsp.common.trace's __all__ also holds the untraced names of the
            # backend it wraps (whichever was imported last): those are the backend's.
            if module_name == "pycsp.common.trace" and not getattr(
                    getattr(module, name), "__module__", "").startswith(module_name):
                continue
            names.append((module_name, name))
    return names


PUBLIC = public_names()
IDS = [f"{module}.{name}" for module, name in PUBLIC]


@pytest.fixture(scope="module")
def reference():
    return documented()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("module, name", PUBLIC, ids=IDS)
def test_every_public_name_is_in_the_reference(module, name, reference):
    obj = getattr(importlib.import_module(module), name)
    if f"{module}.{name}" in reference:
        return
    if is_data(obj):  # a constant is documented by its name (version: once, by threads)
        assert any(target.rsplit(".", 1)[1] == name for target in reference), \
            f"{module}.{name} is in no directive of docs/"
    else:
        assert identity(obj) in {identity(o) for o in reference.values()}, \
            f"{module}.{name} (nor the same object under another name) is in no directive of docs/"


def own_docstring(obj):
    """The docstring written for ``obj`` itself (not one inherited from a base class)."""
    if inspect.isclass(obj):
        return obj.__dict__.get("__doc__") or ""
    return getattr(obj, "__doc__", None) or ""


def members(cls):
    """Public methods and attributes defined by ``cls`` itself."""
    return [(name, value) for name, value in vars(cls).items()
            if not name.startswith("_") and (callable(value) or inspect.isdatadescriptor(value))]


def attributes_section(doc):
    """The names listed in the docstring's ``Attributes:`` section (where a
    class with ``__slots__`` documents them)."""
    section = re.search(r"^ *Attributes:\n((?:(?: {4,}.*)?\n)*)", inspect.cleandoc(doc) + "\n",
                        re.MULTILINE)
    return set(re.findall(r"^ {4}(\w+):", section.group(1), re.MULTILINE)) if section else set()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("module, name", PUBLIC, ids=IDS)
def test_every_public_name_has_a_docstring(module, name):
    obj = getattr(importlib.import_module(module), name)
    if is_data(obj):
        return  # constants: documented by a #: comment (checked by the build below)
    assert own_docstring(obj).strip(), f"{module}.{name} has no docstring"
    if inspect.isclass(obj):
        listed = attributes_section(own_docstring(obj))
        missing = [m for m, value in members(obj)
                   if not (getattr(value, "__doc__", None) or "").strip() and m not in listed]
        assert not missing, f"{module}.{name}: members without a docstring: {missing}"


def parameters(obj):
    """Names of the parameters a caller passes (``self`` and private ones left out)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # a C type made only by its channel: no signature
        return []
    return [p.name for p in signature.parameters.values()
            if p.name != "self" and not p.name.startswith("_")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("module, name", PUBLIC, ids=IDS)
def test_every_docstring_names_its_parameters(module, name):
    obj = getattr(importlib.import_module(module), name)
    if is_data(obj):
        return
    doc = own_docstring(obj)
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return  # constructed by pycsp, not by the user: its docstring says what it means
    missing = [p for p in parameters(obj) if not re.search(rf"\b{re.escape(p)}\b", doc)]
    assert not missing, f"{module}.{name}: the docstring does not name {missing}"


def test_a_name_missing_from_the_reference_is_found(reference):
    """The check above can fail: a name left out of every directive is seen."""
    without = {k: v for k, v in reference.items() if k != "pycsp.threads.AltSelect"}
    from pycsp.threads import AltSelect

    assert identity(AltSelect) not in {identity(o) for o in without.values()}
    assert identity(AltSelect) in {identity(o) for o in reference.values()}


# ---------------------------------------------------------------- the pages' programs

def run_page_program(name, *args):
    env = _child_env()
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env["PYTHONPATH"]])
    env.pop("PYCSP_START_METHOD", None)
    result = subprocess.run([sys.executable, os.path.join(DOCS, "examples", name), *args],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def expected_output(name):
    with open(os.path.join(DOCS, "examples", name.replace(".py", ".out")), encoding="utf-8") as f:
        return f.read()


@pytest.mark.timeout(90)
def test_first_program_prints_what_the_page_shows():
    assert run_page_program("first_program.py") == expected_output("first_program.py")


@pytest.mark.timeout(90)
def test_merge_program_prints_what_the_page_shows(backend):
    assert run_page_program("merge.py", backend) == expected_output("merge.py")


# ---------------------------------------------------------------- the built site

@pytest.mark.timeout(600)
def test_docs_build_with_warnings_as_errors(tmp_path):
    pytest.importorskip("sphinx", reason="sphinx is not installed (pip install '.[docs]')")
    pytest.importorskip("furo", reason="the furo theme is not installed (pip install '.[docs]')")
    from sphinx.util.inventory import InventoryFile

    out = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), DOCS, str(out)],
        capture_output=True, text=True, cwd=ROOT, env=_child_env(), timeout=540)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(out / "objects.inv", "rb") as f:
        inventory = InventoryFile.load(f, "", os.path.join)
    listed = {name for entries in inventory.values() for name in entries}
    reference = documented()
    assert set(reference) <= listed, sorted(set(reference) - listed)
