"""A blocked main thread keeps its place in a channel's queue unless a signal
handler is due (it withdraws its offers so that handlers can use channels),
and signal handlers still run while it is blocked, also with a wakeup fd of
the program's own (as asyncio sets).  On every backend.
"""
import pytest

from conftest import run_script

FAIRNESS_SCRIPT = """
import time
import pycsp.{backend} as csp

@csp.io
def nap(seconds):
    time.sleep(seconds)

@csp.process
def writer(cout, n):
    for i in range(n):
        nap(0.05)
        cout(i)
    csp.retire(cout)

@csp.process
def other_reader(cin, report):
    n = 0
    try:
        while True:
            cin()
            n += 1
    except csp.ChannelRetireException:
        report(n)

if __name__ == "__main__":
    ch = csp.Channel()
    report = csp.Channel(buffer=1)
    cin, report_in = ch.reader(), report.reader()
    csp.Spawn(writer(ch.writer(), 12), other_reader(ch.reader(), report.writer()))
    mine = 0
    try:
        while True:
            cin()
            mine += 1
    except csp.ChannelRetireException:
        pass
    print(mine, report_in())
    csp.shutdown()
"""


@pytest.mark.timeout(40)
def test_blocked_main_thread_keeps_its_place_in_the_queue(backend):
    """Main and one process read the same channel, a message every 50 ms:
    each waits its turn (before: threads gave main 0 of 12)."""
    result = run_script(FAIRNESS_SCRIPT.format(backend=backend), timeout=35)
    assert result.returncode == 0, result.stderr
    mine, other = map(int, result.stdout.split())
    assert mine + other == 12
    assert 4 <= mine <= 8, (mine, other)


HANDLER_SCRIPT = """
import os, signal, sys, threading, time
import pycsp.{backend} as csp

own_fd = {own_fd}
if own_fd:
    r, w = os.pipe()
    os.set_blocking(w, False)
    os.set_blocking(r, False)
    signal.set_wakeup_fd(w)

ch = csp.Channel()
cin, cout = ch.reader(), ch.writer()
handled = []

def handler(signum, frame):
    handled.append(signum)
    if len(handled) == 2:
        raise KeyboardInterrupt  # a handler that raises: nothing is lost

signal.signal(signal.SIGUSR1, handler)

def poke():
    for _ in range(2):
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGUSR1)

@csp.io
def nap(seconds):
    time.sleep(seconds)

@csp.process
def sleeper(end):
    nap(3)  # running (no deadlock) until well after the signals
    end.poison()

if __name__ == "__main__":
    csp.Spawn(sleeper(cout))
    threading.Thread(target=poke, daemon=True).start()
    t0 = time.monotonic()
    try:
        cin()   # nobody writes: only the handler ends this in time
    except KeyboardInterrupt:
        print("interrupted after", len(handled), "signals")
    print("elapsed ok", time.monotonic() - t0 < 2.5)
    csp.shutdown()
    if own_fd:
        got = os.read(r, 100)
        # (processes: SIGCHLD has a handler too once a process is Spawned)
        print("own fd got", signal.SIGUSR1 in set(got))
        print("still own", signal.set_wakeup_fd(-1) == w)
"""


@pytest.mark.timeout(30)
@pytest.mark.parametrize("own_fd", [False, True], ids=["no_wakeup_fd", "own_wakeup_fd"])
def test_signal_handlers_run_while_main_thread_is_blocked(backend, own_fd):
    result = run_script(HANDLER_SCRIPT.format(backend=backend, own_fd=own_fd), timeout=25)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["interrupted after 2 signals", "elapsed ok True"], result.stdout
    if own_fd:
        assert lines[2:] == ["own fd got True", "still own True"], result.stdout


RETIRE_IN_HANDLER_SCRIPT = """
import signal, time
import pycsp.{backend} as csp

ch = csp.Channel()
cin = ch.reader()
keep_writer = ch.writer()

def handler(signum, frame):
    cin.retire()

signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.2)
t0 = time.monotonic()
try:
    csp.AltSelect(csp.InputGuard(cin), csp.TimeoutGuard(seconds=5))
    print("select returned")
except csp.ChannelRetireException as e:
    print("retired:", e)
print("in time", time.monotonic() - t0 < 3)
"""


@pytest.mark.timeout(30)
def test_an_end_retired_by_a_signal_handler_ends_the_alternation_waiting_on_it(backend):
    """The alternation starts again after the handler (CSP_RETRY) and must see
    that the end it waits on is retired now, as a new alternation would."""
    result = run_script(RETIRE_IN_HANDLER_SCRIPT.format(backend=backend), timeout=25)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["retired: this reader end is retired", "in time True"], \
        result.stdout


WAKEUPS_SCRIPT = """
import threading, time
import pycsp.{backend} as csp

def voluntary_switches(tid):
    with open(f"/proc/self/task/{{tid}}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])

main_tid = threading.get_native_id()
counts = []

def watch():
    time.sleep(0.5)   # the main thread is asleep in cin() by now
    counts.append(voluntary_switches(main_tid))
    time.sleep(2.0)
    counts.append(voluntary_switches(main_tid))

@csp.io
def nap(seconds):
    time.sleep(seconds)

@csp.process
def sleeper(end):
    nap(3)  # running (no deadlock) until the watcher has counted
    end.poison()

if __name__ == "__main__":
    ch = csp.Channel()
    cin = ch.reader()
    csp.Spawn(sleeper(ch.writer()))
    threading.Thread(target=watch, daemon=True).start()
    try:
        cin()   # blocked until the sleeper poisons
    except csp.ChannelPoisonException:
        pass
    print(counts[1] - counts[0])
    csp.shutdown()
"""


@pytest.mark.timeout(30)
def test_a_blocked_main_thread_sleeps_until_a_signal_comes(backend):
    """A signal cuts the main thread's sleep short, so it need not wake every
    20 ms to look for one (before: ~100 wake-ups in these 2 s, each a context
    switch; with 256 blocked processes a quarter of ring-256's)."""
    result = run_script(WAKEUPS_SCRIPT.format(backend=backend), timeout=25)
    assert result.returncode == 0, result.stderr
    wakeups = int(result.stdout.strip())
    assert wakeups <= 40, wakeups
