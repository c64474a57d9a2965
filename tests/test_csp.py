"""pycsp.csp: Hoare's CSP notation compiled to PyCSP and run on every backend.

Programs run as ``python -m pycsp.csp`` in a subprocess (a failing program
must exit with its status and leave nothing running).
"""
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, _child_env
from pycsp.csp import compile_csp, cspexec, CSPError, CSPFailure
from pycsp.csp.parser import parse

PROGRAMS = os.path.join(os.path.dirname(__file__), "csp_programs")


def run_csp(path, *args, timeout=60, env=None):
    """Run ``python -m pycsp.csp path args``; a hang fails the test."""
    proc = subprocess.run([sys.executable, "-m", "pycsp.csp", path, *args], capture_output=True,
                          text=True, env={**_child_env(), **(env or {})}, cwd=ROOT, timeout=timeout)
    return proc


def program(name):
    return os.path.join(PROGRAMS, name)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def expected_output(name):
    with open(program(name), encoding="utf-8") as f:
        return f.read()


# (program, arguments, file of its exact output): the examples of
# CSP-NOTATION.md, then Hoare's classic programs.
PROGRAM_RUNS = [
    ("hydra.csp", (), "hydra.out"),
    ("copy.csp", (), "copy.out"),
    ("copy.csp", ("-D", "TEXT=Hoare"), None),
    ("div.csp", (), "div.out"),
    ("fact.csp", (), "fact.out"),
    ("conway.csp", (), "conway.out"),
    ("intset.csp", (), "intset.out"),
    ("buffer.csp", (), "buffer.out"),
    ("philosophers.csp", (), "philosophers.out"),
    ("grammar.csp", (), "grammar.out"),
    ("sieve.csp", ("-D", "SIEVES=10", "-D", "LIMIT=120"), "sieve-small.out"),
    ("sieve.csp", (), "sieve.out"),     # Hoare's size: 100 sieve processes
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name,args,out", PROGRAM_RUNS,
                         ids=[r[0] + "".join(" " + a for a in r[1] if a != "-D") for r in PROGRAM_RUNS])
def test_program_prints_exactly(backend, name, args, out):
    expected = expected_output(out) if out else "Hoare\n"
    result = run_csp(program(name), "--backend", backend, *args, timeout=100)
    assert (result.stdout, result.returncode) == (expected, 0), result.stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name,args,out", PROGRAM_RUNS,
                         ids=[r[0] + "".join(" " + a for a in r[1] if a != "-D") for r in PROGRAM_RUNS])
def test_program_prints_exactly_when_children_are_spawned(name, args, out):
    expected = expected_output(out) if out else "Hoare\n"
    result = run_csp(program(name), "--backend", "processes", "--start-method", "spawn", *args, timeout=100)
    assert (result.stdout, result.returncode) == (expected, 0), result.stderr


@pytest.mark.timeout(90)
@pytest.mark.parametrize("method,spawned", [("spawn", "True"), ("fork", "False")])
def test_start_method_decides_how_children_start(tmp_path, method, spawned):
    # A spawned child is a multiprocessing child that compiled the program
    # again; it still sees its enclosing process's variables and failures keep
    # their .csp position.
    path = write(tmp_path, "spawned.csp", """\
        _include{import multiprocessing}
        n : integer; n := 20;
        [[ a :: {print(multiprocessing.parent_process() is not None)}; b ! n + 1
        || b :: x : integer; a ? x; {print(x)}; {x / 0}
        ]]
        """)
    result = run_csp(path, "--backend", "processes", "--start-method", method)
    assert (result.stdout, result.returncode) == (f"{spawned}\n21\n", 1), result.stderr
    assert "spawned.csp:4:42: failure in process b: ZeroDivisionError" in result.stderr


@pytest.mark.timeout(60)
def test_start_method_is_for_the_processes_backend_only():
    result = run_csp(program("copy.csp"), "--start-method", "spawn")
    assert result.returncode == 2 and "--backend processes only" in result.stderr


def test_expected_outputs_are_those_of_the_design():
    # CSP-NOTATION.md states these; the .out files must not drift from it.
    assert expected_output("hydra.out") == "prod: x = 1\ncons: 1\n"
    assert expected_output("copy.out") == "hello, world\n"
    assert expected_output("div.out") == ("17 div 5 = 3 rem 2\n100 div 7 = 14 rem 2\n"
                                          "3 div 4 = 0 rem 3\n42 div 6 = 7 rem 0\n")
    assert expected_output("fact.out") == FACTORIALS
    primes = [p for p in range(2, 2000) if all(p % d for d in range(2, int(p ** 0.5) + 1))]
    assert expected_output("sieve.out") == "".join(f"{p}\n" for p in primes)


FACTORIALS = "".join(f"{k}! = {v}\n" for k, v in enumerate([1, 1, 2, 6, 24, 120, 720, 5040]))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("choice", ["fair", "pri"])
def test_choice_policy_gives_the_same_output(choice):
    result = run_csp(program("fact.csp"), "--choice", choice)
    assert (result.stdout, result.returncode) == (FACTORIALS, 0), result.stderr


@pytest.mark.timeout(60)
def test_unknown_process_is_a_static_error_with_a_suggestion():
    result = run_csp(program("unknown.csp"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "unknown.csp:1:16:" in result.stderr
    assert "consumr" in result.stderr
    assert "did you mean 'consumer'" in result.stderr


# ---- run-time failures and deadlock ----

# (file, program, what stderr says): status 1, the .csp position and the process.
FAILING_PROGRAMS = [
    ("fail.csp", "[[ a :: x : integer; b ? x; b ? x || b :: a ! 1 ]]\n",
     "fail.csp:1:29: failure in process a: input from b failed: b has terminated"),
    ("out.csp", "[[ a :: b ! 1; b ! 2 || b :: x : integer; a ? x ]]\n",
     "out.csp:1:16: failure in process a: output to b failed: b has terminated"),
    ("alt.csp", "x : integer; x := 3;\n[ x < 0 -> skip [] x = 0 -> skip ]\n",
     "alt.csp:2:1: failure in process main: every guard of the alternative command fails"),
    ("zero.csp", "[[ a :: x : integer; x := 1;\n      {y = x / 0} || b :: skip ]]\n",
     "zero.csp:2:8: failure in process a: ZeroDivisionError"),
]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name,code,message", FAILING_PROGRAMS, ids=[f[0] for f in FAILING_PROGRAMS])
def test_a_failure_is_reported_with_its_process_and_position(backend, tmp_path, name, code, message):
    """Input from, or output to, a terminated process, an alternative command
    whose guards all fail, and a Python exception in { } are failures."""
    result = run_csp(write(tmp_path, name, code), "--backend", backend)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr


@pytest.mark.timeout(90)
def test_deadlock_exits_with_status_3(backend, tmp_path):
    path = write(tmp_path, "dead.csp", "[[ a :: x : integer; b ? x || b :: x : integer; a ? x ]]\n")
    result = run_csp(path, "--backend", backend)
    assert result.returncode == 3, result.stderr
    assert "deadlock" in result.stderr
    # The report names the CSP processes, the channels between them and where
    # in the .csp file each one blocked.
    assert "a (dead.csp:1:22) reads 'b->a' — only b writes 'b->a'" in result.stderr, result.stderr
    assert "b (dead.csp:1:49) reads 'a->b' — only a writes 'a->b'" in result.stderr, result.stderr


@pytest.mark.timeout(90)
def test_a_failing_program_leaves_no_child_process(tmp_path):
    # Each instance prints its pid; a failure in one must not leave the others running.
    # Under python -u too, each child's line arrives whole (print writes its
    # text and the newline apart there unless the runtime buffers lines).
    path = write(tmp_path, "orphans.csp", """\
        _include{import os}
        [[ w(i : 1..3) :: {print(os.getpid(), flush=True)}; x : integer; hub ? x
        || hub :: {import time; time.sleep(0.5)}; {1 / 0}
        ]]
        """)
    result = run_csp(path, "--backend", "processes", env={"PYTHONUNBUFFERED": "1"})
    assert result.returncode == 1, result.stderr
    pids = [int(line) for line in result.stdout.split()]
    assert len(pids) == 3
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"child {pid} still running"


# ---- hand-written semantics on the library API ----

@pytest.mark.timeout(60)
def test_cspexec_runs_on_a_backend_and_defines_override(backend, capfd):
    code = '_include{N = 2}\n[[ p :: q ! N * 21 || q :: x : integer; p ? x; {print(x)} ]]\n'
    cspexec(code, progname="t.csp", backend=backend, defines={"N": 1})
    assert capfd.readouterr().out == "21\n"


@pytest.mark.timeout(60)
def test_cspexec_raises_csp_failure_naming_the_process():
    with pytest.raises(CSPFailure, match=r"t.csp:1:16: failure in process p: output to q failed: q has terminated"):
        cspexec("[[ p :: q ! 1; q ! 2 || q :: x : integer; p ? x ]]", progname="t.csp")


@pytest.mark.timeout(90)
def test_a_signal_whose_guard_is_false_is_not_taken(backend, tmp_path):
    # Hoare's semaphore: X offers P() and V() at once (output guards); while
    # val = 0 only V() may be taken.  One channel per shape makes this exact.
    path = write(tmp_path, "sem.csp", """\
        [[ S :: val, n : integer; val := 0; n := 0;
                *[ n < 2; X ? V() -> val := val + 1; n := n + 1; {print("V")}
                [] n < 2; val > 0; X ? P() -> val := val - 1; n := n + 1; {print("P")} ]
        || X :: p, v : boolean; p := true; v := true;
                *[ p; S ! P() -> p := false [] v; S ! V() -> v := false ]
        ]]
        """)
    result = run_csp(path, "--backend", backend)
    assert (result.stdout, result.returncode) == ("V\nP\n", 0), result.stderr


# ---- syntax and static errors: file:line:col, the source line, a caret, status 2 ----

BAD_PROGRAMS = [
    ("assign.csp", "[[ p :: x : integer;\n  x = 1 ]]\n", "assign.csp:2:5: error: '=' is a comparison: use ':='"),
    ("py2.csp", "[[ p :: x : integer;\n  *[ x < 1 -> {print \"hi\"} ]\n|| q :: skip ]]\n",
     "py2.csp:2:16: error: Python: Missing parentheses in call to 'print'"),
    ("pyexpr.csp", "[[ p :: x : integer; x := {1 +* 2} || q :: skip ]]\n", "pyexpr.csp:1:31: error: Python: invalid syntax"),
    ("unclosed.csp", "[[ p :: x : integer;\n  *[ x < 1 -> skip\n|| q :: skip\n",
     "unclosed.csp:3:1: error: '[' opened at 2:4 is not closed by ']' (found '||')"),
    ("unclosed2.csp", "\n[[ p :: skip || q :: skip ]\n",
     "unclosed2.csp:3:1: error: '[[' opened at 2:1 is not closed by ']]'"),
    ("arrow.csp", "x : integer; x := 0; *[ x < 3 x := x + 1 ]\n",
     "arrow.csp:1:31: error: expected '->' after the guard, found 'x'"),
    ("recursive.csp", "def A = B end\ndef B = A end\n[[ p :: A || q :: skip ]]\n",
     "recursive.csp:2:9: error: 'def A' is recursive (A -> B -> A)"),
    ("undefined.csp", "def COPY = skip end\n[[ p :: COPI || q :: skip ]]\n",
     "undefined.csp:2:9: error: 'COPI' is not a defined command (no 'def COPI = ... end'); did you mean 'COPY'?"),
    ("duplicate.csp", "[[ p :: skip || p :: skip ]]\n", "duplicate.csp:1:17: error: process 'p' is defined twice"),
    ("self.csp", "[[ p :: p ! 1 || q :: skip ]]\n", "self.csp:1:9: error: process 'p' communicates with itself"),
    ("disjoint.csp", "n : integer; n := 0;\n[[ a :: n := 1 || b :: skip ]]\n",
     "disjoint.csp:2:9: error: process 'a' assigns 'n', a variable of the process that contains it"),
    ("subs.csp", "[[ a(i : 1..2) :: skip || b :: a ! 1 ]]\n", "subs.csp:1:32: error: process 'a' takes 1 subscripts, not 0"),
    ("scope.csp", "x : integer; x := 0;\n*[ x < 3 -> y : integer; y := x; x := x + 1 ];\nx := y\n",
     "scope.csp:3:6: error: 'y' is used outside the scope of its declaration (declared at 2:13)"),
    ("sibling.csp", "[[ p :: q ! y || q :: y : integer; p ? y ]]\n",
     "sibling.csp:1:13: error: 'y' is used outside the scope of its declaration (declared at 1:23)"),
    ("undeclared.csp", "[[ p :: total : integer; total := 0; q ! totl || q :: y : integer; p ? y ]]\n",
     "undeclared.csp:1:42: error: 'totl' is not declared (no 'totl : type' before it); did you mean 'total'?"),
    ("target.csp", "[[ p :: q ? n || q :: p ! 1 ]]\n", "target.csp:1:13: error: 'n' is not declared"),
    ("subscript.csp", "[[ a(i : 1..2) :: skip || b :: a(k) ! 1 ]]\n", "subscript.csp:1:34: error: 'k' is not declared"),
    ("guardrange.csp", "[[ a(i : 1..2) :: b ! i || b :: x : integer;\n"
     "  *[ (j : 1..2) a(j) ? x -> skip ]; {print(x)}; a(j) ! 1 ]]\n",
     "guardrange.csp:2:51: error: 'j' is used outside the scope of its declaration (declared at 2:7)"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name,code,message", BAD_PROGRAMS, ids=[b[0] for b in BAD_PROGRAMS])
def test_bad_program_is_reported_at_its_position(tmp_path, name, code, message):
    path = tmp_path / name
    path.write_text(code)
    result = run_csp(str(path))
    assert (result.returncode, result.stdout) == (2, "")
    assert message in result.stderr
    line, col = map(int, message.split(":")[1:3])
    source_line = code.split("\n")[line - 1]
    assert f"\n    {source_line}\n    {' ' * (col - 1)}^" in result.stderr


@pytest.mark.timeout(60)
def test_check_reports_an_output_without_input_as_a_warning(tmp_path):
    path = tmp_path / "warn.csp"
    path.write_text("[[ p :: q ! 1 || q :: skip ]]\n")
    result = run_csp(str(path), "--check")
    assert result.returncode == 0
    assert "warn.csp:1:9: warning: output to q has no matching input from p" in result.stderr


@pytest.mark.timeout(60)
def test_names_bound_otherwise_than_by_declaration_are_in_scope(tmp_path):
    # _include names and builtins, label and guard ranges, declarations in
    # guards, a def expanded where its variable is declared, a process named
    # like a variable, and Python's own names (not analysed) are no scope error.
    path = write(tmp_path, "bound.csp", """\
        _include{import math; LIMIT = 2}
        def SEND = n : integer; n := {abs(-1)}; k ! n + LIMIT end
        [[ w(i : 1..LIMIT) :: out ! i * {len("ab")}
        || out :: *[ (j : 1..LIMIT) k : integer; w(j) ? k -> {v = k}; {print(v + j)} ]; SEND
        || k :: x : integer; out ? x; {print(x + math.floor(0.5))}
        ]]
        """)
    result = run_csp(path)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == ["3", "3", "6"]


@pytest.mark.timeout(60)
def test_a_name_set_by_minus_d_is_in_scope(tmp_path):
    path = write(tmp_path, "defined.csp", "[[ p :: q ! N || q :: y : integer; p ? y; {print(y)} ]]\n")
    assert "'N' is not declared" in run_csp(path, "--check").stderr
    result = run_csp(path, "-D", "N=3")
    assert (result.stdout, result.returncode) == ("3\n", 0), result.stderr


@pytest.mark.timeout(90)
def test_a_plan_time_target_outside_its_array_is_a_warning_and_the_program_runs():
    # Hoare's fac(i+1) for i = LIMIT names no process; it is never executed.
    result = run_csp(program("fact.csp"))
    assert (result.stdout, result.returncode) == (FACTORIALS, 0), result.stderr
    assert result.stderr.splitlines() == [
        "fact.csp:6:23: warning: there is no process fac(9) (the command fails if it is executed)",
        "fact.csp:7:36: warning: there is no process fac(9) (the command fails if it is executed)"]
    smaller = run_csp(program("fact.csp"), "--check", "-D", "LIMIT=3")
    assert "fact.csp:6:23: warning: there is no process fac(4)" in smaller.stderr


@pytest.mark.timeout(60)
def test_only_targets_known_at_plan_time_are_judged(tmp_path):
    # j is a run-time variable, k a guard range inside the array, m rebound by Python.
    path = write(tmp_path, "runtime.csp", """\
        _include{N = 2}
        [[ a(i : 1..N) :: x : integer; b ? x
        || b :: j : integer; j := 5; m : integer; m := 1; {m = 7};
                [ j > N -> skip [] j <= N -> a(j) ! 1 ];
                [ (k : 1..N) true -> a(k) ! k ];
                [ m < 1 -> a(m) ! 0 [] m >= 1 -> skip ]
        ]]
        """)
    result = run_csp(path, "--check")
    assert (result.returncode, result.stderr) == (0, "")


def test_compile_csp_raises_csp_error_with_position():
    with pytest.raises(CSPError) as info:
        compile_csp("[[ producer :: consumr ! 1 || consumer :: x : integer; producer ? x ]]")
    assert (info.value.line, info.value.col) == (1, 16)


def test_parser_gives_every_node_a_position():
    with open(program("fact.csp")) as f:
        prog = parse(f.read())
    par = prog.body[0]
    assert par.pos == (3, 1)
    fac = par.processes[0]
    assert fac.label.pos == (3, 4) and fac.label.subs[0].pos == (3, 8)
    guard = fac.body[0].guarded[0]
    assert guard.comm.pos == (4, 22) and guard.comm.target.pos == (4, 33)


def test_parser_accepts_hoare_parallel_unicode_and_comments():
    prog = parse("-- comment\n[ a :: x : integer; b ? x  -- trailing\n|| b :: [ true → a ! 1 □ false → skip ] ]")
    assert prog.body[0].hoare and [p.label.name for p in prog.body[0].processes] == ["a", "b"]


# ---- --emit: a readable PyCSP program that runs by itself ----

@pytest.mark.timeout(120)
def test_emitted_program_runs_by_itself_on_the_backend_named_in_it(backend, tmp_path):
    result = run_csp(program("fact.csp"), "--emit", "--backend", backend)
    assert result.returncode == 0, result.stderr
    source = result.stdout
    assert f"BACKEND = '{backend}'" in source
    assert "_p.output(f'fac({i - 1})', 1, (5, 22))" in source   # reads as the CSP it came from
    path = tmp_path / "fact.py"
    path.write_text(source)
    ran = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                         env=_child_env(), cwd=str(tmp_path), timeout=100)
    assert (ran.stdout, ran.returncode) == (expected_output("fact.out"), 0), ran.stderr


@pytest.mark.timeout(120)
def test_emitted_program_runs_with_spawned_children(tmp_path):
    path = tmp_path / "fact.py"
    path.write_text(run_csp(program("fact.csp"), "--emit").stdout)
    ran = subprocess.run([sys.executable, str(path), "--backend", "processes", "--start-method", "spawn"],
                         capture_output=True, text=True, env=_child_env(), cwd=str(tmp_path), timeout=100)
    assert (ran.stdout, ran.returncode) == (expected_output("fact.out"), 0), ran.stderr


@pytest.mark.timeout(60)
def test_emitted_program_reports_failures_at_csp_positions(tmp_path):
    csp_path = write(tmp_path, "zero.csp", "[[ a :: x : integer; x := 1;\n      {y = x / 0} || b :: skip ]]\n")
    source = run_csp(csp_path, "--emit").stdout
    path = tmp_path / "zero.py"
    path.write_text(source)
    ran = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                         env=_child_env(), cwd=str(tmp_path), timeout=50)
    assert ran.returncode == 1
    assert "zero.csp:2:8: failure in process a: ZeroDivisionError" in ran.stderr


def test_readme_shows_the_tested_copy_program():
    with open(os.path.join(ROOT, "README.rst"), encoding="utf-8") as f:
        readme = f.read()
    block = readme.split("(Hoare 3.1)::\n\n", 1)[1].split("\n\n", 1)[0]
    shown = "".join(line[4:] + "\n" for line in block.split("\n"))
    assert shown == expected_output("copy.csp")
    assert "python -m pycsp.csp copy.csp --backend processes" in readme
