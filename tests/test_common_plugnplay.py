"""pycsp.common.plugNplay: PyCSP's components, on every backend.

Each component is checked for what it writes, and for how it ends: when a
channel it uses is poisoned or retired, it poisons or retires all of its ends,
so the end of a network spreads through it.
"""
import pytest

from conftest import run_script, stream_processes
from net_backend import DEADLOCK_IS_LOCAL
from pycsp.common.plugNplay import (Delta2, Identity, Mux2, Pairs, Plus, Prefix, SkipProcess,
                                    Successor, Tail)


def helpers(csp):
    """A producer that writes a list then retires, a consumer that reads until
    retired (conftest.stream_processes), and a reader of a fixed count that
    poisons afterwards."""
    produce, consume = stream_processes(csp)

    @csp.process
    def take_then_poison(cin, n):
        got = [cin() for _ in range(n)]
        csp.poison(cin)
        return got

    return produce, consume, take_then_poison


@pytest.mark.timeout(30)
def test_identity_copies_its_input_and_passes_retire_on(csp):
    produce, consume, _ = helpers(csp)
    a, b, c = csp.Channel(), csp.Channel(), csp.Channel()
    results = csp.Parallel(produce(-a, list(range(20))), Identity(+a, -b), Identity(+b, -c),
                           consume(+c))
    assert results == [None, None, None, list(range(20))]


@pytest.mark.timeout(30)
def test_poison_downstream_reaches_the_writer_upstream(csp):
    _, _, take_then_poison = helpers(csp)

    @csp.process
    def endless(cout):
        n = 0
        try:
            while True:
                cout(n)
                n += 1
        except csp.ChannelPoisonException:
            return "poisoned"

    a, b = csp.Channel(), csp.Channel()
    results = csp.Parallel(endless(-a), Identity(+a, -b), take_then_poison(+b, 5))
    assert results == ["poisoned", None, [0, 1, 2, 3, 4]]


@pytest.mark.timeout(30)
def test_prefix_writes_its_prefix_first(csp):
    produce, consume, _ = helpers(csp)
    a, b = csp.Channel(), csp.Channel()
    results = csp.Parallel(produce(-a, [1, 2]), Prefix(+a, -b, prefix="first"), consume(+b))
    assert results[2] == ["first", 1, 2]


@pytest.mark.timeout(30)
def test_prefix_defaults_to_none(csp):
    produce, consume, _ = helpers(csp)
    a, b = csp.Channel(), csp.Channel()
    assert csp.Parallel(produce(-a, [7]), Prefix(+a, -b), consume(+b))[2] == [None, 7]


@pytest.mark.timeout(30)
def test_successor_adds_one(csp):
    produce, consume, _ = helpers(csp)
    a, b = csp.Channel(), csp.Channel()
    assert csp.Parallel(produce(-a, [0, 41, -1]), Successor(+a, -b), consume(+b))[2] == [1, 42, 0]


@pytest.mark.timeout(30)
def test_delta2_copies_to_both_outputs_whichever_reads_first(csp):
    produce, consume, _ = helpers(csp)

    @csp.process
    def second_reader_first(cin_late, cin_early, n):
        # Reads the second output before the first each time: Delta2 must not
        # insist on an order.
        got = []
        for _ in range(n):
            early = cin_early()
            got.append((cin_late(), early))
        csp.retire(cin_late, cin_early)
        return got

    a, b, c = csp.Channel(), csp.Channel(), csp.Channel()
    results = csp.Parallel(produce(-a, list(range(10))), Delta2(+a, -b, -c),
                           second_reader_first(+b, +c, 10))
    assert results[2] == [(i, i) for i in range(10)]


@pytest.mark.timeout(30)
def test_delta2_retires_both_outputs_when_its_input_retires(csp):
    produce, consume, _ = helpers(csp)
    a, b, c = csp.Channel(), csp.Channel(), csp.Channel()
    results = csp.Parallel(produce(-a, ["x", "y"]), Delta2(+a, -b, -c), consume(+b), consume(+c))
    assert results[2:] == [["x", "y"], ["x", "y"]]


@pytest.mark.timeout(30)
def test_plus_adds_one_value_of_each_input(csp):
    produce, consume, _ = helpers(csp)
    a, b, c = csp.Channel(), csp.Channel(), csp.Channel()
    results = csp.Parallel(produce(-a, [1, 2, 3]), produce(-b, [10, 20, 30]),
                           Plus(+a, +b, -c), consume(+c))
    assert results[3] == [11, 22, 33]


@pytest.mark.timeout(30)
def test_tail_drops_the_first_value(csp):
    produce, consume, _ = helpers(csp)
    a, b = csp.Channel(), csp.Channel()
    assert csp.Parallel(produce(-a, "abcd"), Tail(+a, -b), consume(+b))[2] == list("bcd")


@pytest.mark.timeout(30)
def test_pairs_sums_consecutive_values_and_ends_by_retire(csp):
    produce, consume, _ = helpers(csp)
    a, b = csp.Channel(), csp.Channel()
    values = [1, 2, 4, 8, 16]
    results = csp.Parallel(produce(-a, values), Pairs(+a, -b), consume(+b))
    assert results == [None, None, [3, 6, 12, 24]]


@pytest.mark.timeout(30)
def test_pairs_ends_by_poison_from_its_reader(csp):
    _, _, take_then_poison = helpers(csp)

    @csp.process
    def naturals(cout):
        n = 0
        try:
            while True:
                cout(n)
                n += 1
        except csp.ChannelPoisonException:
            return "poisoned"

    a, b = csp.Channel(), csp.Channel()
    results = csp.Parallel(naturals(-a), Pairs(+a, -b), take_then_poison(+b, 4))
    assert results == ["poisoned", None, [1, 3, 5, 7]]


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_pairs_inner_network_counts_for_deadlock_detection(csp):
    # Pairs runs its three processes on its own backend (OS processes under
    # processes): with nobody writing its input, the whole program is blocked,
    # and Parallel raises instead of hanging.
    a, b = csp.Channel(), csp.Channel()
    unused_writer = a.writer()

    @csp.process
    def read_one(cin):
        return cin()

    with pytest.raises(csp.DeadlockError):
        csp.Parallel(Pairs(+a, -b), read_one(+b))
    del unused_writer


@pytest.mark.timeout(30)
def test_skip_process_ends_at_once(csp):
    assert csp.Parallel(SkipProcess(), SkipProcess()) == [None, None]


@pytest.mark.timeout(30)
def test_mux2_forwards_every_value_of_both_inputs_in_their_order(csp):
    produce, consume, _ = helpers(csp)
    a, b, c = csp.Channel(), csp.Channel(), csp.Channel()
    left, right = [("L", i) for i in range(15)], [("R", i) for i in range(15)]

    @csp.process
    def read_all(cin, n):
        got = [tuple(cin()) for _ in range(n)]
        csp.retire(cin)
        return got

    results = csp.Parallel(produce(-a, left), produce(-b, right), Mux2(+a, +b, -c),
                           read_all(+c, 30))
    got = results[3]
    assert [m for m in got if m[0] == "L"] == left
    assert [m for m in got if m[0] == "R"] == right


@pytest.mark.timeout(30)
def test_mux2_does_not_starve_either_input(csp):
    _, _, take_then_poison = helpers(csp)
    # Both inputs hold 30 values before Mux2 starts, so at each of its first
    # 40 choices both are ready: a fair choice takes from each in turn (a
    # choice by priority would take the 30 of the first input first).
    a, b, c = csp.Channel(buffer=30), csp.Channel(buffer=30), csp.Channel()
    fill_a, fill_b = a.writer(), b.writer()
    for _ in range(30):
        fill_a("a")
        fill_b("b")
    results = csp.Parallel(Mux2(+a, +b, -c), take_then_poison(+c, 40))
    got = results[1]
    assert got.count("a") == got.count("b") == 20, got


@pytest.mark.timeout(30)
def test_fibonacci_from_prefix_pairs_and_delta2(csp):
    _, _, take_then_poison = helpers(csp)
    a, b, c, d, out = (csp.Channel(name) for name in ("A", "B", "C", "D", "out"))
    results = csp.Parallel(
        Prefix(+b, -a, prefix=0),
        Prefix(+c, -b, prefix=1),
        Pairs(+d, -c),
        Delta2(+a, -d, -out),
        take_then_poison(+out, 12),
    )
    assert results[-1] == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89]


# ------------------------------------------------------------------ bad arguments


def test_a_writer_end_where_a_reader_belongs_raises_at_the_call(csp):
    ch = csp.Channel()
    with pytest.raises(TypeError, match=r"Identity: cin must be a reader end .*not a writer end"):
        Identity(-ch, -ch)
    with pytest.raises(TypeError, match=r"Delta2: cout2 must be a writer end .*not a reader end"):
        Delta2(+ch, -ch, +ch)


def test_a_channel_instead_of_an_end_raises_at_the_call(csp):
    ch = csp.Channel()
    with pytest.raises(TypeError, match=r"Successor: cout must be a writer end .*Channel"):
        Successor(+ch, ch)


def test_a_missing_or_unknown_argument_raises_at_the_call(csp):
    ch = csp.Channel()
    with pytest.raises(TypeError, match=r"Plus: missing a required argument: 'cout'"):
        Plus(+ch, +ch)
    with pytest.raises(TypeError, match=r"Prefix: got an unexpected keyword argument 'prefixItem'"):
        Prefix(+ch, -ch, prefixItem=0)
    with pytest.raises(TypeError, match=r"Tail: cin must be a reader end .*not int"):
        Tail(3, -ch)


def test_star_import_adds_only_the_components():
    namespace = {}
    exec("from pycsp.processes import *\nfrom pycsp.common.plugNplay import *", namespace)
    import pycsp.processes

    assert namespace["Channel"] is pycsp.processes.Channel
    assert namespace["Parallel"] is pycsp.processes.Parallel
    for name in ("Identity", "Prefix", "Successor", "Delta2", "Plus", "Tail", "Pairs",
                 "SkipProcess", "Mux2"):
        assert callable(namespace[name])


@pytest.mark.timeout(120)
def test_components_start_by_spawn_pickled_by_name():
    # Under the spawn start each process is pickled: a component, and Pairs'
    # inner processes, are found again by their names in pycsp.common.plugNplay.
    # (The main program reads the output itself: a -c script has no module a
    # spawned child could import its own processes from.)
    result = run_script("""
        from pycsp.processes import *
        from pycsp.common.plugNplay import *

        a, b, c, d, out = Channel(), Channel(), Channel(), Channel(), Channel()
        numbers = +out
        Spawn(Prefix(+b, -a, prefix=0), Prefix(+c, -b, prefix=1), Pairs(+d, -c),
              Delta2(+a, -d, -out))
        print([numbers() for _ in range(8)])
        poison(numbers)
        shutdown()
    """, env={"PYCSP_START_METHOD": "spawn"}, timeout=100)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[0, 1, 1, 2, 3, 5, 8, 13]\n"
    assert result.stderr == ""


@pytest.mark.timeout(60)
def test_a_program_written_for_pycsp_0_9_2_runs_unchanged(backend):
    # PyCSP 0.9.2's Fibonacci example, as its users wrote it: star imports,
    # printing inside a process, poison to end, shutdown() at the end.
    result = run_script(f"""
        from pycsp.{backend} import *
        from pycsp.common.plugNplay import *

        @process
        def Printer(cin, limit):
            for i in range(limit):
                print(cin())
            poison(cin)

        A = Channel('A')
        B = Channel('B')
        C = Channel('C')
        D = Channel('D')
        printC = Channel()

        Parallel(
            Prefix(+B, -A, prefix=0),
            Prefix(+C, -B, prefix=1),
            Pairs(+D, -C),
            Delta2(+A, -D, -printC),
            Printer(+printC, limit=10)
        )

        shutdown()
    """)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.split() == ["0", "1", "1", "2", "3", "5", "8", "13", "21", "34"]


@pytest.mark.timeout(60)
def test_mux2_goes_on_with_one_input_after_the_other_retires(csp):
    produce, consume, _ = helpers(csp)

    @csp.process
    def slow_producer(cout, items, go):
        go()  # starts only once the other input is retired
        for item in items:
            cout(item)
        csp.retire(cout)

    @csp.process
    def short_producer(cout, items, go):
        for item in items:
            cout(item)
        csp.retire(cout)
        go("the other may start")

    a, b, c, go = csp.Channel(), csp.Channel(), csp.Channel(), csp.Channel()
    results = csp.Parallel(short_producer(-a, [1, 2], -go), slow_producer(-b, [3, 4, 5], +go),
                           Mux2(+a, +b, -c), consume(+c))
    assert sorted(results[3]) == [1, 2, 3, 4, 5]
