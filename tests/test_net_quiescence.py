"""The root's side of a run's deadlock (pycsp.net._quiescence.RunWatch): the
waves of reports it takes for a deadlock, and those it must not.

A report is (busy, fingerprint, sent, received), of a node (STATUS) or of
the root itself (csp_ext.shm_run_snapshot, replaced here)."""
import pytest

pytest.importorskip("zmq")

from pycsp.net import _quiescence  # noqa: E402
from pycsp.net._quiescence import _ANSWER, _REPORT, RunWatch  # noqa: E402

IDLE = (0, 0xF00D, 5, 7)  # a node: nothing busy, sent 5, received 7
# The root: the other side of the same messages; one member stands here
# (a process waiting for its node); what was blocked (for the break).
ROOT_IDLE = (0, 0xBEEF, 7, 5, 1, b"blocked")


@pytest.fixture
def root(monkeypatch):
    """The root's own report (``state["root"]``) and the deadlocks it broke."""
    state = {"root": ROOT_IDLE, "broken": []}
    monkeypatch.setattr(_quiescence.csp_ext, "shm_run_snapshot", lambda exclude: state["root"])
    def break_it(number, blocked):
        assert blocked == state["root"][5]  # the root's own snapshot of that wave
        state["broken"].append(number)

    monkeypatch.setattr(_quiescence.csp_ext, "shm_break_run_deadlock", break_it)
    return state


def report(watch, token, facts, seen=None):
    """A node's report, taken after it heard of the watch's epoch (or of
    ``seen``); the answer: (epoch, last deadlock broken)."""
    epoch = watch.epoch if seen is None else seen
    return _ANSWER.unpack(watch.report([_REPORT.pack(token, epoch, *facts)]))


def test_two_waves_alike_with_everything_blocked_and_nothing_in_flight_break_it(root):
    watch = RunWatch()
    watch.member(1, True)
    report(watch, 1, IDLE)
    assert root["broken"] == []  # one wave is never enough
    epoch, broken = report(watch, 1, IDLE)
    assert root["broken"] == [broken] and broken > 0
    # the nodes hear of it in the answer; a wave after it starts afresh
    report(watch, 1, IDLE)
    assert len(root["broken"]) == 1


@pytest.mark.parametrize("node, root_facts", [
    ((1, 0xF00D, 5, 7), ROOT_IDLE),           # a process of the node is busy
    (IDLE, (1, 0xBEEF, 7, 5, 1, b"")),        # one of the root's is
    ((0, 0xF00D, 6, 7), ROOT_IDLE),           # a message of the node's is on its way
    (IDLE, (0, 0xBEEF, 7, 5, 2, b"")),        # a node started by another agent here
])
def test_a_busy_process_or_a_message_in_flight_is_no_deadlock(root, node, root_facts):
    root["root"] = root_facts
    watch = RunWatch()
    watch.member(1, True)
    for _ in range(5):
        report(watch, 1, node)
    assert root["broken"] == []


def test_a_change_between_two_waves_is_no_deadlock(root):
    """Same counts, every process blocked at both waves: but one of them ran
    in between (its fingerprint changed), so nothing says they were blocked
    all along."""
    watch = RunWatch()
    watch.member(1, True)
    report(watch, 1, IDLE)
    report(watch, 1, (0, 0xF00E, 5, 7))
    assert root["broken"] == []
    root["root"] = (0, 0xBEE0, 7, 5, 1, b"")  # the root's own
    report(watch, 1, (0, 0xF00E, 5, 7))
    assert root["broken"] == []
    report(watch, 1, (0, 0xF00E, 5, 7))
    assert len(root["broken"]) == 1


def test_a_report_taken_before_the_epoch_began_does_not_count(root):
    watch = RunWatch()
    watch.member(1, True)
    for _ in range(4):
        report(watch, 1, IDLE, seen=watch.epoch - 1)
    assert root["broken"] == []


def test_every_member_must_report_and_a_member_that_ends_starts_the_waves_again(root):
    root["root"] = (0, 0xBEEF, 7, 5, 2, b"")
    watch = RunWatch()
    watch.member(1, True)
    watch.member(2, True)
    for _ in range(3):
        report(watch, 1, IDLE)
    assert root["broken"] == []  # node 2 has not reported
    report(watch, 2, (0, 1, 0, 0))
    report(watch, 1, IDLE)
    watch.member(3, True)
    watch.member(3, False)  # the waves before it are over other programs
    report(watch, 1, IDLE)
    report(watch, 2, (0, 1, 0, 0))
    assert root["broken"] == []
    report(watch, 1, IDLE)
    report(watch, 2, (0, 1, 0, 0))
    assert len(root["broken"]) == 1


def test_without_members_nothing_is_a_run_deadlock(root):
    watch = RunWatch()
    for _ in range(3):
        report(watch, 9, IDLE)  # not a member: ignored
    assert root["broken"] == []


def test_a_report_that_does_not_parse_is_answered_and_ignored(root):
    watch = RunWatch()
    watch.member(1, True)
    assert _ANSWER.unpack(watch.report([b"junk"]))[0] == watch.epoch
    assert _ANSWER.unpack(watch.report([]))[0] == watch.epoch
    assert root["broken"] == []
