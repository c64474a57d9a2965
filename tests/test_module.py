"""The csp_ext module itself: multi-phase initialisation, heap types, one
module state per process, greenlet imported only when its backend starts."""
import gc
import sys

import pytest

from conftest import run_script

csp_ext = pytest.importorskip("csp_ext")

Py_TPFLAGS_IMMUTABLETYPE = 1 << 8
Py_TPFLAGS_HEAPTYPE = 1 << 9

TYPES = ["Task", "Join", "Channel", "ChannelEndRead", "ChannelEndWrite", "InputGuard",
         "OutputGuard", "SkipGuard", "TimeoutGuard", "ShmChannel", "ShmChannelEndRead",
         "ShmChannelEndWrite", "ShmBuffer", "_ShmProxy"]


@pytest.mark.timeout(30)
def test_import_does_not_import_greenlet():
    """greenlet is imported when the greenlets backend starts, not with csp_ext
    or the other backends."""
    result = run_script("""
        import sys
        import csp_ext, pycsp, pycsp.threads, pycsp.processes
        print("greenlet" in sys.modules)
    """, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False"]


@pytest.mark.parametrize("name", TYPES)
def test_types_are_immutable_heap_types(name):
    tp = getattr(csp_ext, name)
    assert tp.__flags__ & Py_TPFLAGS_HEAPTYPE
    assert tp.__flags__ & Py_TPFLAGS_IMMUTABLETYPE
    with pytest.raises(TypeError):
        tp.some_attribute = 1


@pytest.mark.parametrize("name", ["ShmChannelEndRead", "ShmChannelEndWrite", "ShmBuffer"])
def test_types_made_only_by_the_core_cannot_be_called(name):
    with pytest.raises(TypeError, match="cannot create"):
        getattr(csp_ext, name)()


def test_instances_keep_their_type_alive_exactly():
    """Every instance holds one reference to its heap type and gives it back
    (a missing Py_DECREF in a tp_dealloc shows as a growing count)."""
    class MyChannel(csp_ext.Channel):
        pass

    class MyGuard(csp_ext.SkipGuard):
        pass

    types = [csp_ext.Channel, csp_ext.ChannelEndRead, csp_ext.ChannelEndWrite,
             csp_ext.Join, csp_ext.SkipGuard, csp_ext.InputGuard, csp_ext.TimeoutGuard,
             MyChannel, MyGuard]
    def make_and_drop():
        keep = []
        for cls in (csp_ext.Channel, MyChannel):
            ch = cls(buffer=1)
            keep += [ch, ch.reader(), ch.writer(), +ch, -ch, csp_ext.InputGuard(+ch)]
        keep += [csp_ext.Join(1), csp_ext.SkipGuard(), MyGuard(), csp_ext.TimeoutGuard(0.5)]
        keep.append(keep)   # a cycle: the collector frees these

    gc.collect()
    before = [sys.getrefcount(t) for t in types]
    for _ in range(3):
        make_and_drop()
        gc.collect()
    assert [sys.getrefcount(t) for t in types] == before


@pytest.mark.timeout(30)
def test_a_second_load_shares_the_first_modules_objects():
    """After del sys.modules["csp_ext"], importing it again gives a new module
    object with the very same types and exceptions (one state per process)."""
    result = run_script("""
        import sys
        import csp_ext as first
        del sys.modules["csp_ext"]
        import csp_ext as second
        assert second is not first
        for name in ("Channel", "ChannelPoisonException", "DeadlockError", "Task", "select"):
            assert getattr(second, name) is getattr(first, name), name
        ch = second.Channel()
        ch.poison()
        try:
            (+ch)()
        except first.ChannelPoisonException:
            print("caught")
    """, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["caught"]


@pytest.mark.timeout(30)
def test_subinterpreters_are_refused():
    """The core keeps process-wide state: another interpreter cannot import it."""
    pytest.importorskip("_testcapi")
    result = run_script("""
        import os, _testcapi
        import csp_ext
        code = ("import sys; sys.path.insert(0, %r); import csp_ext" %
                os.path.dirname(os.path.abspath(csp_ext.__file__)))
        print(_testcapi.run_in_subinterp(code))
    """, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["-1"]
    assert "only in the main interpreter" in result.stderr
