"""pycsp.common.toolkit: which, file_r, file_w, execute, runner, on every backend.

Text travels as PyCSP's records: lists of lines.  The external commands used
(sort, cat, sh, yes, true) are those of any POSIX system.
"""
import os
import shutil
import sys

import pytest

from conftest import stream_processes
from net_backend import DEADLOCK_IS_LOCAL
from pycsp.common.toolkit import execute, file_r, file_w, runner, which


def test_star_import_adds_only_the_tools():
    namespace = {}
    exec("from pycsp.greenlets import *\nfrom pycsp.common.toolkit import *", namespace)
    import pycsp.greenlets

    assert namespace["Parallel"] is pycsp.greenlets.Parallel
    assert namespace["io"] is pycsp.greenlets.io
    for name in ("which", "file_r", "file_w", "execute", "runner"):
        assert callable(namespace[name])


# ------------------------------------------------------------------------ which


def test_which_finds_a_program_on_path():
    assert which("sh") == shutil.which("sh")
    assert os.path.isabs(which("sh"))


def test_which_gives_none_for_a_missing_program():
    assert which("no-such-program-pycsp-test") is None


def test_which_rejects_a_non_string():
    with pytest.raises(TypeError, match="which: cmd must be a str, not int"):
        which(3)


# ----------------------------------------------------------------------- file_r


@pytest.mark.timeout(30)
def test_file_r_sends_one_line_per_record_and_retires_at_eof(csp, tmp_path):
    _, consume = stream_processes(csp)
    path = tmp_path / "in.txt"
    path.write_text("one\ntwo\nthree")
    ch = csp.Channel()
    results = csp.Parallel(file_r(-ch, str(path)), consume(+ch))
    assert results[1] == [["one\n"], ["two\n"], ["three"]]


@pytest.mark.timeout(30)
def test_file_r_groups_lines_into_records_ending_at_sep(csp, tmp_path):
    _, consume = stream_processes(csp)
    path = tmp_path / "records.txt"
    path.write_text("a\nb\n--\nc\n--\nd\n")
    ch = csp.Channel()
    results = csp.Parallel(file_r(-ch, path, sep="--"), consume(+ch))
    assert results[1] == [["a\n", "b\n", "--\n"], ["c\n", "--\n"], ["d\n"]]


@pytest.mark.timeout(30)
def test_file_r_reads_an_open_file_object(csp, tmp_path):
    _, consume = stream_processes(csp)
    path = tmp_path / "in.txt"
    path.write_text("x\ny\n")
    ch = csp.Channel()
    with open(path) as f:
        results = csp.Parallel(file_r(-ch, f), consume(+ch))
    assert results[1] == [["x\n"], ["y\n"]]


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_file_r_without_retire_on_eof_leaves_its_end_joined(csp, tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("only\n")
    ch = csp.Channel()

    @csp.process
    def read_then_check(cin):
        first = cin()
        # file_r ended without retiring: a write from here would find a reader
        # joined, and this reader sees no retire, only a deadlock.
        try:
            cin()
        except csp.DeadlockError:
            return first, "still joined"

    results = csp.Parallel(file_r(-ch, path, retire_on_eof=False), read_then_check(+ch))
    assert results[1] == (["only\n"], "still joined")


@pytest.mark.timeout(30)
def test_file_r_of_a_missing_file_raises_in_parallel(csp, tmp_path):
    _, consume = stream_processes(csp)
    ch = csp.Channel()
    with pytest.raises(FileNotFoundError):
        csp.Parallel(file_r(-ch, tmp_path / "missing.txt"), consume(+ch))


def test_file_r_rejects_bad_arguments_at_the_call(csp):
    ch = csp.Channel()
    with pytest.raises(TypeError, match="file_r: file must be a path or a file object"):
        file_r(-ch, 42)
    with pytest.raises(ValueError, match="file_r: sep must be a non-empty str"):
        file_r(-ch, "x.txt", sep="")
    with pytest.raises(TypeError, match="cout must be a writer end"):
        file_r(+ch, "x.txt")


# ----------------------------------------------------------------------- file_w


@pytest.mark.timeout(30)
def test_file_w_writes_strings_and_records_until_retired(csp, tmp_path):
    produce, _ = stream_processes(csp)
    path = tmp_path / "out.txt"
    ch = csp.Channel()
    csp.Parallel(produce(-ch, ["plain\n", ["a\n", "b\n"], "end"]), file_w(+ch, str(path)))
    assert path.read_text() == "plain\na\nb\nend"


@pytest.mark.timeout(30)
def test_file_r_into_file_w_copies_a_file(csp, tmp_path):
    source, copy = tmp_path / "source.txt", tmp_path / "copy.txt"
    text = "".join(f"line {i}\n" for i in range(200)) + "last"
    source.write_text(text)
    ch = csp.Channel()
    csp.Parallel(file_r(-ch, source), file_w(+ch, copy))
    assert copy.read_text() == text


@pytest.mark.timeout(30)
def test_file_w_writes_to_an_open_file_and_leaves_it_open(csp, tmp_path):
    produce, _ = stream_processes(csp)
    path = tmp_path / "out.txt"
    ch = csp.Channel()
    with open(path, "w") as f:
        csp.Parallel(produce(-ch, ["x", "y"]), file_w(+ch, f))
        assert not f.closed
        f.write("z")
    assert path.read_text() == "xyz"


@pytest.mark.timeout(30)
def test_file_w_poisoned_poisons_its_input(csp, tmp_path):
    ch = csp.Channel()

    @csp.process
    def write_then_poison(cout):
        cout("kept\n")
        csp.poison(cout)

    csp.Parallel(write_then_poison(-ch), file_w(+ch, tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text() == "kept\n"
    with pytest.raises(csp.ChannelPoisonException):
        ch.writer()("more")


@pytest.mark.timeout(30)
def test_file_w_of_a_bad_message_raises_in_parallel(csp, tmp_path):
    produce, _ = stream_processes(csp)
    ch = csp.Channel()
    with pytest.raises(TypeError, match="file_w: a message to write must be a str"):
        csp.Parallel(produce(-ch, [42]), file_w(+ch, tmp_path / "out.txt"))


def test_file_w_rejects_bad_arguments_at_the_call(csp):
    ch = csp.Channel()
    with pytest.raises(TypeError, match="file_w: file must be a path or a file object"):
        file_w(+ch, None)
    with pytest.raises(TypeError, match="cin must be a reader end"):
        file_w(-ch, "out.txt")


# ---------------------------------------------------------------------- execute


@pytest.mark.timeout(30)
def test_execute_connects_stdin_and_stdout_and_returns_the_exit_code(csp):
    produce, consume = stream_processes(csp)
    stdin, stdout = csp.Channel(), csp.Channel()
    results = csp.Parallel(
        execute(["sort"], +stdin, -stdout),
        produce(-stdin, ["pear\n", ["apple\n", "fig\n"]]),
        consume(+stdout),
    )
    assert results[0] == 0
    assert results[2] == [["apple\n"], ["fig\n"], ["pear\n"]]


@pytest.mark.timeout(30)
def test_execute_gives_stderr_and_a_failing_exit_code(csp):
    _, consume = stream_processes(csp)
    out, err = csp.Channel(), csp.Channel()
    results = csp.Parallel(
        execute(["sh", "-c", "echo out; echo err >&2; exit 3"], None, -out, -err),
        consume(+out), consume(+err))
    assert results == [3, [["out\n"]], [["err\n"]]]


@pytest.mark.timeout(30)
def test_execute_runs_no_shell_unless_asked(csp):
    _, consume = stream_processes(csp)
    literal, expanded = csp.Channel(), csp.Channel()
    results = csp.Parallel(
        execute("echo '$HOME' `date` | x", None, -literal), consume(+literal),
        execute("echo $((6 * 7))", None, -expanded, shell=True), consume(+expanded))
    # Without a shell the string is split as a shell would, and nothing is expanded.
    assert results[1] == [["$HOME `date` | x\n"]]
    assert results[3] == [["42\n"]]


@pytest.mark.timeout(30)
def test_execute_answers_line_by_line(csp):
    # An interactive command: each line is answered before the next is sent,
    # so the pumps must not hold up the processes around them (greenlets: the
    # pipe reads run as @io calls).
    stdin, stdout = csp.Channel(), csp.Channel()

    @csp.process
    def converse(cout, cin, n):
        answers = []
        for i in range(n):
            cout(f"{i}\n")
            answers.append(cin())
        csp.retire(cout)
        try:
            cin()
        except csp.ChannelRetireException:
            return answers

    results = csp.Parallel(execute(["cat"], +stdin, -stdout), converse(-stdin, +stdout, 5))
    assert results == [0, [[f"{i}\n"] for i in range(5)]]


@pytest.mark.timeout(30)
def test_execute_stopped_by_poison_kills_the_command(csp):
    stdout = csp.Channel()

    @csp.process
    def first_lines(cin, n):
        got = [cin() for _ in range(n)]
        csp.poison(cin)
        return got

    # `yes` never ends by itself: only the kill ends it.
    results = csp.Parallel(execute(["yes", "y"], None, -stdout), first_lines(+stdout, 3))
    assert results == [None, [["y\n"]] * 3]


@pytest.mark.timeout(30)
def test_execute_whose_reader_retires_closes_the_pipe(csp):
    stdout = csp.Channel()

    @csp.process
    def first_lines(cin, n):
        got = [cin() for _ in range(n)]
        csp.retire(cin)
        return got

    results = csp.Parallel(execute(["yes", "y"], None, -stdout), first_lines(+stdout, 3))
    assert results[1] == [["y\n"]] * 3
    assert results[0] != 0  # yes ended by the broken pipe


@pytest.mark.timeout(30)
def test_execute_retires_stdin_when_the_command_stops_reading(csp):
    stdin = csp.Channel()

    @csp.process
    def write_until_retired(cout):
        sent = 0
        try:
            while True:
                cout("line\n")
                sent += 1
        except csp.ChannelRetireException:
            return "retired"

    results = csp.Parallel(execute(["true"], +stdin), write_until_retired(-stdin))
    assert results == [0, "retired"]


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_execute_without_retire_on_eof_leaves_stdout_joined(csp):
    stdout = csp.Channel()

    @csp.process
    def read_then_check(cin):
        first = cin()
        try:
            cin()
        except csp.DeadlockError:
            return first, "still joined"

    results = csp.Parallel(execute(["echo", "hi"], None, -stdout, retire_on_eof=False),
                           read_then_check(+stdout))
    assert results == [0, (["hi\n"], "still joined")]


@pytest.mark.timeout(30)
def test_execute_of_a_missing_program_raises_in_parallel(csp):
    _, consume = stream_processes(csp)
    stdout = csp.Channel()
    with pytest.raises(FileNotFoundError):
        csp.Parallel(execute(["no-such-program-pycsp-test"], None, -stdout), consume(+stdout))


@pytest.mark.timeout(30)
def test_execute_with_a_bad_stdin_message_stops_the_command(csp):
    produce, consume = stream_processes(csp)
    stdin, stdout = csp.Channel(), csp.Channel()
    with pytest.raises(TypeError, match="execute stdin: a message to write must be a str"):
        csp.Parallel(execute(["cat"], +stdin, -stdout), produce(-stdin, [3.5]), consume(+stdout))


@pytest.mark.timeout(30)
def test_execute_with_no_channels_waits_for_the_command(csp):
    assert csp.Parallel(execute([sys.executable, "-c", "raise SystemExit(5)"])) == [5]


def test_execute_rejects_bad_arguments_at_the_call(csp):
    ch = csp.Channel()
    with pytest.raises(TypeError, match="execute: command must be a str or a list of str"):
        execute(42)
    with pytest.raises(ValueError, match="execute: the command is empty"):
        execute([])
    with pytest.raises(TypeError, match="execute: command arguments must be str"):
        execute(["echo", 1])
    with pytest.raises(TypeError, match="execute: stdinChEnd must be a reader end"):
        execute(["cat"], -ch)
    with pytest.raises(TypeError, match="execute: stdoutChEnd must be a writer end"):
        execute(["cat"], None, +ch)
    with pytest.raises(TypeError, match="execute: shell must be True or False"):
        execute("true", shell="yes")
    with pytest.raises(ValueError, match="with shell=True, give the command as one str"):
        execute(["true"], shell=True)


# ----------------------------------------------------------------------- runner


@pytest.mark.timeout(30)
def test_runner_runs_the_commands_it_reads_one_after_the_other(csp):
    _, consume = stream_processes(csp)
    jobs, first_out, second_out = csp.Channel(), csp.Channel(), csp.Channel()
    second_in = csp.Channel()

    @csp.process
    def submit(cout, feed):
        cout((["echo", "first"], None, -first_out, None))
        cout((["tr", "a-z", "A-Z"], +second_in, -second_out, None))
        feed("second\n")
        csp.retire(feed)
        csp.retire(cout)

    results = csp.Parallel(runner(+jobs), submit(-jobs, -second_in), consume(+first_out),
                           consume(+second_out))
    assert results[2:] == [[["first\n"]], [["SECOND\n"]]]


@pytest.mark.timeout(30)
def test_runner_goes_on_after_a_poisoned_command(csp):
    _, consume = stream_processes(csp)
    jobs, endless_out, next_out = csp.Channel(), csp.Channel(), csp.Channel()

    @csp.process
    def submit(cout):
        cout((["yes"], None, -endless_out, None))
        cout((["echo", "next"], None, -next_out, None))
        csp.retire(cout)

    @csp.process
    def first_then_poison(cin):
        got = cin()
        csp.poison(cin)
        return got

    results = csp.Parallel(runner(+jobs), submit(-jobs), first_then_poison(+endless_out),
                           consume(+next_out))
    assert results[2:] == [["y\n"], [["next\n"]]]


@pytest.mark.timeout(30)
def test_runner_given_a_bad_message_raises_in_parallel(csp):
    produce, _ = stream_processes(csp)
    jobs = csp.Channel()
    with pytest.raises(TypeError, match=r"runner: each message must be \(command, stdinChEnd"):
        csp.Parallel(runner(+jobs), produce(-jobs, ["ls"]))
