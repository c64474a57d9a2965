"""Bad input gets a clear error at the call that caused it, and nothing is lost."""
import pytest


def _message(excinfo):
    return str(excinfo.value).lower()


# --------------------------------------------------------------------------- channels


@pytest.mark.parametrize("bad", [-1, -100])
def test_negative_buffer_is_value_error(csp, bad):
    with pytest.raises(ValueError) as excinfo:
        csp.Channel(buffer=bad)
    assert "buffer" in _message(excinfo)


@pytest.mark.parametrize("bad", [1.5, "3", [], object()], ids=["float", "str", "list", "object"])
def test_non_int_buffer_is_type_error(csp, bad):
    with pytest.raises(TypeError) as excinfo:
        csp.Channel(buffer=bad)
    assert "buffer" in _message(excinfo) or type(bad).__name__ in _message(excinfo)


@pytest.mark.timeout(20)
def test_reader_end_cannot_write(csp):
    ch = csp.Channel(buffer=1)
    r, w = ch.reader(), ch.writer()
    with pytest.raises(TypeError):
        r("a message")  # a reader end is called without a message
    with pytest.raises((AttributeError, TypeError)):
        r.cout("a message")
    # Nothing was written by the failed attempt.
    w("real")
    assert r() == "real"


@pytest.mark.timeout(20)
def test_writer_end_cannot_read(csp):
    ch = csp.Channel(buffer=1)
    r, w = ch.reader(), ch.writer()
    with pytest.raises(TypeError):
        w()  # a writer end needs the message
    with pytest.raises((AttributeError, TypeError)):
        w.cin()
    w("still works")
    assert r() == "still works"


def test_ends_need_a_channel_argument(csp):
    with pytest.raises((TypeError, AttributeError)):
        csp.IN(42)
    with pytest.raises((TypeError, AttributeError)):
        csp.OUT("not a channel")


def test_poison_and_retire_reject_non_ends(csp):
    with pytest.raises((TypeError, AttributeError)):
        csp.poison(42)
    with pytest.raises((TypeError, AttributeError)):
        csp.retire("not an end")


def test_channel_multiplied_by_non_int(csp):
    with pytest.raises(TypeError):
        csp.Channel() * 1.5
    with pytest.raises(TypeError):
        "x" * csp.Channel()


# --------------------------------------------------------------------------- alternation


@pytest.mark.timeout(20)
@pytest.mark.parametrize("bad", [42, "not a guard", object()], ids=["int", "str", "object"])
def test_non_guard_in_alternation_is_type_error(csp, bad):
    with pytest.raises(TypeError) as excinfo:
        csp.Alternation([{bad: None}]).select()
    msg = _message(excinfo)
    assert "guard" in msg or type(bad).__name__ in msg


@pytest.mark.timeout(20)
@pytest.mark.parametrize("select", ["AltSelect", "PriSelect", "FairSelect"])
def test_non_guard_in_select_is_type_error(csp, select):
    ch = csp.Channel(buffer=1)
    r, w = ch.reader(), ch.writer()
    w("kept")
    with pytest.raises(TypeError) as excinfo:
        getattr(csp, select)(csp.InputGuard(r), 42)
    msg = _message(excinfo)
    assert "guard" in msg or "int" in msg
    # The failed select took nothing.
    assert r() == "kept"


@pytest.mark.timeout(20)
def test_alternation_entry_of_wrong_shape_is_type_error(csp):
    with pytest.raises(TypeError):
        csp.Alternation([42]).select()


def test_input_guard_needs_a_reader_end(csp):
    ch = csp.Channel()
    with pytest.raises(TypeError):
        csp.InputGuard(ch.writer())
    with pytest.raises(TypeError):
        csp.OutputGuard(ch.reader(), "msg")


@pytest.mark.parametrize("ctor", ["TimeoutGuard", "Timeout"])
def test_negative_timeout_is_value_error(csp, ctor):
    with pytest.raises(ValueError) as excinfo:
        g = getattr(csp, ctor)(-1)
        if ctor == "Timeout":
            csp.Alternation([{g: None}]).select()
        else:
            csp.PriSelect(g)
    msg = _message(excinfo)
    assert "timeout" in msg or "second" in msg or "negative" in msg


def test_non_number_timeout_is_type_error(csp):
    with pytest.raises(TypeError):
        csp.PriSelect(csp.TimeoutGuard("soon"))


# --------------------------------------------------------------------------- processes


@pytest.mark.parametrize("bad", [42, "P", None, lambda: None], ids=["int", "str", "None", "function"])
@pytest.mark.parametrize("runner", ["Parallel", "Sequence", "Spawn"])
def test_runner_given_a_non_process_is_type_error(csp, runner, bad):
    with pytest.raises(TypeError) as excinfo:
        getattr(csp, runner)(bad)
    msg = _message(excinfo)
    assert "process" in msg or type(bad).__name__.lower() in msg


@pytest.mark.timeout(20)
def test_parallel_rejects_bad_item_before_starting_anything(csp):
    started = []

    @csp.process
    def p():
        started.append(True)

    with pytest.raises(TypeError):
        csp.Parallel(p(), [p(), 42])
    assert started == []


@pytest.mark.timeout(20)
def test_process_needs_a_callable(csp):
    # Rejected when made, or at the latest when run.
    with pytest.raises(TypeError):
        csp.Parallel(csp.Process(42))


@pytest.mark.parametrize("n", [2.5, True, "3", float("nan"), float("inf"), None], ids=repr)
def test_process_multiplied_by_what_is_no_whole_number(csp, n):
    @csp.process
    def p():
        pass

    with pytest.raises(TypeError) as excinfo:
        p() * n
    if n is not None:  # None: Python's "unsupported operand type(s)"
        assert "whole number" in str(excinfo.value)
