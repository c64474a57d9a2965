"""API.md: exception classes are the same objects in every backend and in pycsp."""
import importlib

import pytest

from conftest import PROGRAM_BACKENDS

EXCEPTIONS = ["ChannelPoisonException", "ChannelRetireException", "DeadlockError"]

NAMES = [
    "Channel", "ChannelEndRead", "ChannelEndWrite", "IN", "OUT", "poison", "retire",
    "ChannelPoisonException", "ChannelRetireException", "DeadlockError",
    "process", "Process", "Parallel", "Sequence", "Spawn", "io", "current_process_id",
    "shutdown", "Alternation", "choice", "AltSelect", "FairSelect", "PriSelect",
    "InputGuard", "OutputGuard", "SkipGuard", "TimeoutGuard", "Skip", "Timeout", "version",
]


@pytest.mark.parametrize("name", NAMES)
def test_backend_exports_name(csp, name):
    assert hasattr(csp, name), f"{csp.__name__} does not export {name}"


@pytest.mark.parametrize("name", NAMES)
def test_top_level_package_exports_name(name):
    import pycsp

    assert hasattr(pycsp, name), f"pycsp does not export {name}"


@pytest.mark.parametrize("name", EXCEPTIONS)
def test_exception_is_an_exception_class(csp, name):
    cls = getattr(csp, name)
    assert isinstance(cls, type)
    assert issubclass(cls, Exception)


@pytest.mark.parametrize("name", EXCEPTIONS)
def test_exception_same_object_in_pycsp_and_every_backend(name):
    import pycsp

    expected = getattr(pycsp, name)
    for backend in PROGRAM_BACKENDS:
        mod = importlib.import_module(f"pycsp.{backend}")
        assert getattr(mod, name) is expected, f"pycsp.{backend}.{name} is not pycsp.{name}"


def test_exceptions_are_distinct_classes():
    import pycsp

    classes = [getattr(pycsp, name) for name in EXCEPTIONS]
    assert len(set(classes)) == len(classes)
    # Poison and retire are distinct signals: catching one must not catch the other.
    assert not issubclass(pycsp.ChannelPoisonException, pycsp.ChannelRetireException)
    assert not issubclass(pycsp.ChannelRetireException, pycsp.ChannelPoisonException)


def test_top_level_package_is_the_threads_backend():
    import pycsp
    import pycsp.threads

    assert pycsp.version[3] == "threads"
    assert pycsp.version == pycsp.threads.version
    for name in NAMES:
        assert getattr(pycsp, name) is getattr(pycsp.threads, name), name


@pytest.mark.timeout(20)
def test_exception_raised_by_backend_caught_via_top_level_class(csp):
    import pycsp

    ch = csp.Channel()
    w, r = ch.writer(), ch.reader()
    ch.poison()
    with pytest.raises(pycsp.ChannelPoisonException):
        r()
    ch2 = csp.Channel()
    w2, r2 = ch2.writer(), ch2.reader()
    w2.retire()
    with pytest.raises(pycsp.ChannelRetireException):
        r2()
