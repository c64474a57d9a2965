"""A program that uses every public name of pycsp, type-correctly.

tests/test_typing.py checks it with ``mypy --strict`` and runs it: it must
type-check and work.  Each backend gets the same program (the names and their
types are the same), written out so that the checker sees each module's own.
"""
from __future__ import annotations

import io as stdio
import sys
from typing import Any

import pycsp
import pycsp.greenlets as green
import pycsp.parallel as par
import pycsp.processes as procs
import pycsp.threads as threads
from pycsp.common import plugNplay, toolkit
from pycsp.common import trace


def threads_program() -> list[int]:
    csp = threads
    numbers = csp.Channel[int]("numbers", buffer=2)
    words: csp.Channel[str] = csp.Channel("words")

    @csp.process
    def produce(cout: csp.ChannelEndWrite[int], count: int) -> None:
        for n in range(count):
            cout(n)
        csp.retire(cout)

    @csp.process
    def consume(cin: csp.ChannelEndRead[int]) -> int:
        total = 0
        try:
            while True:
                total += cin()
        except csp.ChannelRetireException:
            return total

    @csp.io
    def slow(x: int) -> int:
        return x

    @csp.choice
    def got(label: str, channel_input: Any = None) -> None:
        seen.append(f"{label}:{channel_input}")

    seen: list[str] = []
    results = csp.Parallel(produce(-numbers, 5), [consume(csp.IN(numbers))])
    csp.Sequence(csp.Process(slow, 1))
    talk, hear = csp.OUT(words), +words
    csp.Spawn(csp.Process(talk, "hi"))
    word: str = hear()
    csp.shutdown()
    alt = csp.Alternation([{csp.Skip(): got("skip")}, (csp.TimeoutGuard(0.01), None)])
    alt.execute()
    guard, msg = csp.AltSelect(csp.InputGuard(hear), csp.SkipGuard())
    csp.PriSelect(csp.OutputGuard(talk, "x"), csp.Timeout(0.001))
    csp.FairSelect(csp.Skip())
    p = produce(-numbers, 0)
    assert isinstance(p, csp.Process) and len(p * 2) == 2
    csp.poison(words)
    for error in (csp.ChannelPoisonException, csp.DeadlockError):
        assert issubclass(error, Exception)
    out = stdio.StringIO()
    csp.dump_state(out, others=False)
    assert csp.current_process_id() and csp.version[3] == "threads" and word == "hi"
    if sys.platform == "linux" and guard is not None and msg is None:
        csp.dump_state_on(file=out)
    return [int(r) for r in results if r is not None] + [slow(2)]


def greenlets_program() -> int:
    csp = green
    ch = csp.Channel[int]()

    @csp.process
    def double(cin: csp.ChannelEndRead[int], cout: csp.ChannelEndWrite[int]) -> None:
        cout(2 * cin())

    @csp.io
    def slow() -> int:
        return 3

    results = csp.Parallel(csp.Process(lambda cout: cout(slow()), csp.OUT(ch)),
                           double(csp.IN(ch), -ch), csp.Process(ch.reader()))
    csp.Sequence()
    csp.Spawn()
    csp.shutdown()
    csp.AltSelect(csp.Skip())
    csp.PriSelect(csp.SkipGuard(), csp.Timeout(0.01))
    csp.FairSelect(csp.TimeoutGuard(0.001))
    csp.Alternation([csp.InputGuard(+ch), csp.OutputGuard(-ch, 1), csp.Skip()]).select()
    csp.choice(print)
    csp.dump_state(stdio.StringIO())
    csp.retire(+ch)
    csp.poison(ch)
    named: list[object] = [csp.ChannelPoisonException, csp.ChannelRetireException,
                           csp.DeadlockError, csp.dump_state_on]
    assert None not in named and csp.current_process_id() and csp.version[3] == "greenlets"
    value: int = results[2]
    return value


def processes_program() -> int:
    csp = procs
    csp.set_start_method(csp.get_start_method())
    ch = csp.Channel[int]("shared")

    @csp.process
    def square(cin: csp.ChannelEndRead[int], cout: csp.ChannelEndWrite[int]) -> None:
        cout(cin() ** 2)

    @csp.process
    def answer() -> int:
        return 7

    back = csp.Channel[int]()
    csp.Spawn(square(csp.IN(ch), csp.OUT(back)))
    ch.writer()(5)
    got: int = (+back)()
    csp.shutdown()
    results = csp.Parallel(answer(), csp.Sequence(answer()) and [])
    csp.AltSelect(csp.Skip())
    csp.PriSelect(csp.SkipGuard())
    csp.FairSelect(csp.Timeout(0.001), csp.TimeoutGuard(1))
    csp.Alternation([csp.InputGuard(+ch), csp.OutputGuard(-ch, 1), {csp.Skip(): None}]).select()
    csp.io(print)
    csp.choice(print)
    csp.dump_state(stdio.StringIO())
    csp.retire(-ch)
    csp.poison(ch)
    named: list[object] = [csp.ProcessCrashed, csp.ChannelRetireException,
                           csp.ChannelPoisonException, csp.DeadlockError, csp.Process,
                           csp.dump_state_on]
    assert None not in named and csp.current_process_id() and csp.version[3] == "processes"
    total: int = got + results[0]
    return total


def parallel_program() -> int:
    ch = par.Channel("p")

    @par.multiprocess
    def child(cout: par.ChannelEndWrite[int]) -> None:
        cout(11)

    @par.process
    def thread(cin: par.ChannelEndRead[int]) -> int:
        value: int = cin()
        return value

    results = par.Parallel(child(-ch), thread(+ch))
    named: list[object] = [par.MultiProcess, par.Io, par.Configuration, par.ProcessCrashed,
                           par.SSHProcess, par.sshprocess, par.ClusterProcess,
                           par.clusterprocess]
    assert None not in named
    for error in (par.ChannelSocketException, par.ChannelConnectException, par.InfoException,
                  par.ChannelBindException, par.ChannelLostException, par.FatalException):
        assert issubclass(error, Exception)
    assert None not in (par.PYCSP_HOST, par.PYCSP_PORT, par.SOCKETS_STRICT_MODE)
    delays: list[object] = [par.SOCKETS_BIND_TIMEOUT, par.SOCKETS_BIND_RETRY_DELAY,
                            par.SOCKETS_CONNECT_TIMEOUT, par.SOCKETS_CONNECT_RETRY_DELAY]
    assert None not in delays
    answer: int = results[1]
    return answer


def components_program(tmp_path: str) -> list[Any]:
    a, b, c, d = pycsp.Channel[int]() * 4
    out = pycsp.Channel[int]()

    @pycsp.process
    def take(cin: pycsp.ChannelEndRead[int], n: int) -> list[int]:
        got = [cin() for _ in range(n)]
        pycsp.poison(cin)
        return got

    results = pycsp.Parallel(
        plugNplay.Prefix(+b, -a, prefix=0),
        plugNplay.Successor(+a, -c),
        plugNplay.Delta2(+c, -d, -b),
        plugNplay.Identity(+d, -out),
        take(+out, 3),
    )
    x, y, s = pycsp.Channel[int]() * 3
    # Made, not run (they end only when poisoned): their arguments are what is checked.
    made = [plugNplay.Mux2(+x, +y, -s), plugNplay.Plus(+s, +s, -x), plugNplay.Tail(+s, -y),
            plugNplay.Pairs(+y, -x)]
    pycsp.Parallel(plugNplay.SkipProcess())
    assert all(isinstance(p, pycsp.Process) for p in made)
    lines = pycsp.Channel[Any]()
    path = f"{tmp_path}/lines.txt"

    def write_line(cout: pycsp.ChannelEndWrite[Any]) -> None:
        cout("a\n")
        pycsp.retire(cout)

    pycsp.Parallel(toolkit.file_w(+lines, path), pycsp.Process(write_line, -lines))
    read = pycsp.Channel[Any]()
    got = pycsp.Parallel(toolkit.file_r(-read, path), pycsp.Process(lambda cin: cin(), +read))
    commands = pycsp.Channel[Any]()
    pycsp.Parallel(toolkit.runner(+commands), toolkit.execute(["true"]),
                   pycsp.Process(pycsp.retire, -commands))
    assert toolkit.which("sh")
    return list(results[-1]) + got


def traced_program(tmp_path: str) -> str | None:
    trace.set_backend("threads")
    trace.TraceInit(f"{tmp_path}/trace.json")
    ch = trace.Channel[int]("traced")

    @trace.process
    def send(cout: trace.ChannelEndWrite[int]) -> None:
        cout(1)
        trace.TraceMsg("sent")

    trace.Parallel(send(-ch), trace.Process(ch.reader()))
    assert trace.backend() is threads
    return trace.TraceQuit()


if __name__ == "__main__":
    tmp = sys.argv[1]
    print(threads_program(), greenlets_program(), processes_program(), parallel_program())
    print(components_program(tmp), traced_program(tmp))
