"""@sshprocess and @clusterprocess (issue #16): processes of one program on
other hosts (network namespaces with an sshd each, tests/nethosts.py), joined
to channels homed in the program, their answers and failures back in Parallel.

Each case is a program of its own (configure() is once per program), run
with the hosts' ssh config and addresses in its environment.
"""
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import _child_env, run_script
from nethosts import NetHosts, unavailable_reason

REASON = unavailable_reason()
if REASON and os.environ.get("PYCSP_TEST_REQUIRE_NETHOSTS") != "1":
    pytestmark = pytest.mark.skip(reason=f"multi-host tests: {REASON}")

NET_BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "net_bin")

PRELUDE = """
import os, sys
import pycsp.net as pycsp

def where():
    # This host's address (the namespace's eth0), or "local".
    out = os.popen("ip -4 -o addr show dev eth0 2>/dev/null").read().split()
    return out[3].split("/")[0] if len(out) > 3 else "local"

@pycsp.process
def producer(cout, n):
    for i in range(n):
        cout(i)
    pycsp.retire(cout)

@pycsp.process
def collect(cin):
    got = []
    try:
        while True:
            got.append(cin())
    except pycsp.ChannelRetireException:
        pass
    return got

"""


@pytest.fixture(scope="module")
def hosts():
    with NetHosts(2) as h:
        yield h


def run_program(hosts, body, *, env=None, timeout=45):
    """Run PRELUDE + body as a program from a file (the hosts load the
    functions of a process from its file, as PyCSP 0.9.2 did)."""
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".py", prefix="net_prog_", delete=False) as f:
        f.write(PRELUDE + textwrap.dedent(body))
    env = {**os.environ, "PYCSP_SSH_OPTIONS": f"-F {hosts.ssh_config}",
           "TEST_GATEWAY": hosts.gateway, "TEST_H1": hosts.address["h1"],
           "TEST_H2": hosts.address["h2"], **(env or {})}
    try:
        return run_script(f"import runpy; runpy.run_path({f.name!r}, run_name='__main__')",
                          timeout=timeout, env=env)
    finally:
        os.unlink(f.name)


@pytest.mark.timeout(120)
def test_a_process_on_another_host_reads_and_writes_channels_homed_here(hosts):
    result = run_program(hosts, """
        @pycsp.sshprocess(ssh_host="h1")
        def square(cin, cout):
            try:
                while True:
                    x = cin()
                    cout((x * x, where()))
            except pycsp.ChannelRetireException:
                pycsp.retire(cout)
            return "returned from " + where()

        if __name__ == "__main__":
            pycsp.configure(host=os.environ["TEST_GATEWAY"])
            a, b = pycsp.Channel(), pycsp.Channel()
            sq, got = square(+a, -b), collect(+b)
            pycsp.Parallel(producer(-a, 20), sq, got)
            print(sq.return_value)
            print(sorted(v for v, _ in got.return_value))
            print(set(h for _, h in got.return_value))
    """)
    assert result.returncode == 0, result.stderr
    h1 = hosts.address["h1"]
    assert result.stdout.splitlines() == [
        f"returned from {h1}", str([i * i for i in range(20)]), str({h1})], result.stdout


@pytest.mark.timeout(120)
def test_a_deadlock_across_the_program_and_two_hosts_raises_everywhere(hosts):
    """Every process waits on a channel or for another host's answer: the
    program's Parallel raises DeadlockError listing the blocked processes of
    all hosts (tests/test_net_run_deadlock.py has the cases on one host)."""
    result = run_program(hosts, """
        @pycsp.sshprocess(ssh_host="h1")
        def relay(cin, cout):
            cout(cin())

        @pycsp.sshprocess(ssh_host="h2")
        def relay_too(cin, cout):
            cout(cin())

        if __name__ == "__main__":
            pycsp.configure(host=os.environ["TEST_GATEWAY"])
            a, b, c = pycsp.Channel("a"), pycsp.Channel("b"), pycsp.Channel("c")
            try:
                # a ring with no message in it: each reads first
                pycsp.Parallel(relay(+a, -b), relay_too(+b, -c), collect(+c))
            except pycsp.DeadlockError as error:
                print(sorted(e.name for e in error.blocked))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(["collect", "relay", "relay_too"])], \
        result.stdout + result.stderr


@pytest.mark.timeout(120)
def test_a_process_on_another_host_alternates_over_channels_homed_here(hosts):
    """Input guards on two channels homed here, then output guards: exactly one
    commits each time, and every message arrives once."""
    result = run_program(hosts, """
        @pycsp.sshprocess(ssh_host="h1")
        def merge(a_in, b_in, low_out, high_out, n):
            got = []
            for _ in range(2 * n):
                end, msg = pycsp.AltSelect(pycsp.InputGuard(a_in), pycsp.InputGuard(b_in))
                got.append(msg)
            for x in sorted(got):
                pycsp.AltSelect(pycsp.OutputGuard(low_out, x), pycsp.OutputGuard(high_out, x))
            pycsp.retire(low_out, high_out)
            return where()

        @pycsp.process
        def numbers(cout, n):  # (not retiring: a guard on a retired channel raises)
            for i in range(n):
                cout(i)

        if __name__ == "__main__":
            pycsp.configure(host=os.environ["TEST_GATEWAY"])
            a, b, low, high = (pycsp.Channel() for _ in range(4))
            m = merge(+a, +b, -low, -high, 10)
            one, other = collect(+low), collect(+high)
            pycsp.Parallel(numbers(-a, 10), numbers(-b, 10), m, one, other)
            print(m.return_value)
            print(sorted(one.return_value + other.return_value))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        hosts.address["h1"], str(sorted(list(range(10)) * 2))], result.stdout + result.stderr


@pytest.mark.timeout(120)
def test_channel_ends_travel_to_a_process_on_another_host_and_back(hosts):
    """The reply-channel pattern with a server on h1: each request carries the writer
    end of a plain channel of this program (homed here when first sent); the server
    answers on it there, then sends it back, where it is this program's own end again."""
    result = run_program(hosts, """
        @pycsp.sshprocess(ssh_host="h1")
        def server(requests, answers):
            for _ in range(3):
                n, reply = requests()
                reply((n * n, where(), type(reply).__name__))
            answers(requests()[1])

        @pycsp.process
        def client(ask, answers_in, reply_out, reply_in):
            got = []
            for n in range(3):
                ask((n, reply_out))
                got.append(reply_in())
            ask((None, reply_out))
            back = answers_in()
            back("through the end that came back")
            return got, type(back).__name__, reply_in()

        if __name__ == "__main__":
            pycsp.configure(host=os.environ["TEST_GATEWAY"])
            requests, answers, replies = pycsp.Channel(), pycsp.Channel(), pycsp.Channel(buffer=1)
            c = client(-requests, +answers, -replies, +replies)
            pycsp.Parallel(server(+requests, -answers), c)
            got, kind, last = c.return_value
            print(got)
            print(kind, last)
            print(replies.statistics()["writers"])
    """)
    assert result.returncode == 0, result.stderr
    h1 = hosts.address["h1"]
    assert result.stdout.splitlines() == [
        str([(n * n, h1, "RemoteChannelEndWrite") for n in range(3)]),
        "ChannelEndWrite through the end that came back", "1"], result.stdout + result.stderr


@pytest.mark.timeout(120)
def test_an_exception_there_is_raised_by_parallel_here_and_poisons_the_peers(hosts):
    result = run_program(hosts, """
        @pycsp.sshprocess(ssh_host="h2")
        def picky(cin):
            if cin() == 0:
                raise ValueError("no zeros on " + where())

        if __name__ == "__main__":
            pycsp.configure(host=os.environ["TEST_GATEWAY"])
            a = pycsp.Channel()
            try:
                pycsp.Parallel(producer(-a, 5), picky(+a))
            except ValueError as e:
                print("raised:", e)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"raised: no zeros on {hosts.address['h2']}", \
        result.stdout + result.stderr


@pytest.mark.timeout(120)
def test_a_node_killed_there_is_host_lost_here_and_its_channels_are_poisoned(hosts):
    result = run_program(hosts, """
        import signal

        @pycsp.sshprocess(ssh_host="h1")
        def dies(cin, cout):
            cin()
            os.kill(os.getppid(), signal.SIGKILL)   # the node that runs this process

        @pycsp.process
        def waits(cin):
            try:
                cin()
            except pycsp.ChannelPoisonException:
                return "poisoned"

        if __name__ == "__main__":
            pycsp.configure(host=os.environ["TEST_GATEWAY"])
            a, b = pycsp.Channel(), pycsp.Channel()
            w = waits(+b)
            try:
                pycsp.Parallel(producer(-a, 3), dies(+a, -b), w)
            except pycsp.HostLost as e:
                print("HostLost:", "dies on h1" in str(e), isinstance(e, pycsp.ProcessCrashed))
            print(w.return_value)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["HostLost: True True", "poisoned"], \
        result.stdout + result.stderr


@pytest.mark.timeout(120)
def test_a_host_cut_off_is_host_lost_within_the_ssh_keepalive(hosts, tmp_path):
    script = PRELUDE + textwrap.dedent("""
        import time

        @pycsp.sshprocess(ssh_host="h2")
        def stuck(cin):
            cin()
            while True:  # the host is cut off while this waits (with a
                # deadline: a wait for good would be the run's deadlock)
                pycsp.AltSelect(pycsp.InputGuard(cin), pycsp.TimeoutGuard(seconds=0.5))

        @pycsp.process
        def once(cout):
            cout(1)   # and no retire: stuck waits for a second message

        if __name__ == "__main__":
            pycsp.configure(host=os.environ["TEST_GATEWAY"])
            a = pycsp.Channel()
            t0 = time.monotonic()
            try:
                pycsp.Parallel(stuck(+a), once(-a))
            except pycsp.HostLost as e:
                print("HostLost after", round(time.monotonic() - t0), "s")
    """)
    env = dict(_child_env(), TEST_GATEWAY=hosts.gateway,
               PYCSP_SSH_OPTIONS=f"-F {hosts.ssh_config} -o ServerAliveInterval=1 "
                                 f"-o ServerAliveCountMax=2")
    program = tmp_path / "stuck.py"
    program.write_text(script)
    proc = subprocess.Popen([sys.executable, str(program)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        # The node is there and waits: its ssh session runs on h2.
        _wait_for_node(hosts, "h2", proc)
        import time
        time.sleep(1)
        hosts.link_down("h2")
        try:
            out, err = proc.communicate(timeout=40)
        finally:
            hosts.link_up("h2")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    seconds = int(out.split()[-2])
    assert out.startswith("HostLost after") and seconds < 30, out + err


@pytest.mark.timeout(120)
def test_a_node_cut_off_past_the_heartbeat_timeout_is_poisoned_then_fenced(hosts, tmp_path):
    """ssh's keepalive is slower than pycsp's heartbeat here: the home declares the node
    dead while its link is down (its joins are poisoned: the reader here stops), and
    when the link comes back the home refuses the node, which ends (HostLost, fenced)."""
    script = PRELUDE + textwrap.dedent("""
        import time

        @pycsp.sshprocess(ssh_host="h2")
        def idle(cout):
            cout(1)
            time.sleep(60)    # cut off, declared dead and fenced while this sleeps
            cout(2)

        @pycsp.process
        def waits(cin):
            cin()
            open(os.environ["TEST_FIRST_READ"], "w").close()
            try:
                cin()
            except pycsp.ChannelPoisonException:
                return time.monotonic()

        if __name__ == "__main__":
            pycsp.configure(host=os.environ["TEST_GATEWAY"], heartbeat_interval=0.25,
                            heartbeat_timeout=2.0)
            a = pycsp.Channel()
            w = waits(+a)
            try:
                pycsp.Parallel(idle(-a), w)
            except pycsp.HostLost as e:
                print("HOSTLOST", repr("fenced" in str(e)), time.monotonic())
            print("POISONED_AT", w.return_value)
    """)
    first_read = tmp_path / "first_read"
    env = dict(_child_env(), TEST_GATEWAY=hosts.gateway, TEST_FIRST_READ=str(first_read),
               PYCSP_SSH_OPTIONS=f"-F {hosts.ssh_config} -o ServerAliveInterval=60")
    program = tmp_path / "idle.py"
    program.write_text(script)
    proc = subprocess.Popen([sys.executable, str(program)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    import time
    try:
        started = time.monotonic()
        while not first_read.exists():     # the node started (slow under load) and wrote
            if time.monotonic() - started > 60 or proc.poll() is not None:
                proc.kill()
                pytest.fail("no first message from the node:\n" + "\n".join(proc.communicate()))
            time.sleep(0.1)
        time.sleep(0.5)           # it idles now
        down_at = time.monotonic()
        hosts.link_down("h2")
        try:
            time.sleep(6)         # three heartbeat timeouts
        finally:
            hosts.link_up("h2")
        up_at = time.monotonic()
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    fenced, lost_at = lines["HOSTLOST"].split()
    assert fenced == "True", out + err
    assert down_at < float(lines["POISONED_AT"]) < up_at, out + err
    assert float(lost_at) > up_at, out + err
    assert "declared dead" in err, err
    assert not _nodes_on(hosts, "h2")


def _wait_for_node(hosts, name, proc, timeout=30):
    """Until a pycsp.net.node runs on host ``name`` (``proc``'s)."""
    import time
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if _nodes_on(hosts, name):
            return
        time.sleep(0.2)
    proc.kill()
    out, err = proc.communicate()
    pytest.fail(f"the node never started on {name}:\n{out}\n{err}")


def _nodes_on(hosts, name):
    pids = subprocess.run(["ip", "netns", "pids", hosts.netns(name)],
                          capture_output=True, text=True).stdout.split()
    return [p for p in pids if "pycsp.net.node" in _cmdline(p)]


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.timeout(120)
def test_cluster_processes_from_a_pbs_nodefile_are_placed_strided(hosts, tmp_path):
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("h1\nh1\nh2\nh2\n")
    result = run_program(hosts, """
        @pycsp.clusterprocess(cluster_hint="strided")
        def report(cout):
            cout(where())
            pycsp.retire(cout)

        if __name__ == "__main__":
            pycsp.configure(host=os.environ["TEST_GATEWAY"])
            a = pycsp.Channel()
            got = collect(+a)
            pycsp.Parallel(*[report(-a) for _ in range(4)], got)
            print(got.return_value.count(os.environ["TEST_H1"]),
                  got.return_value.count(os.environ["TEST_H2"]))
    """, env={"PBS_NODEFILE": str(nodefile)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "2"], result.stdout + result.stderr


@pytest.mark.timeout(120)
def test_cluster_processes_in_a_slurm_allocation_start_with_srun(hosts):
    result = run_program(hosts, """
        @pycsp.clusterprocess(cluster_pin=1)
        def report(cout):
            cout(where())
            pycsp.retire(cout)

        if __name__ == "__main__":
            pycsp.configure(host=os.environ["TEST_GATEWAY"])
            a = pycsp.Channel()
            got = collect(+a)
            pycsp.Parallel(report(-a), got)
            print(got.return_value)
    """, env={"SLURM_JOB_NODELIST": "h[1-2]",
              "PATH": NET_BIN + os.pathsep + os.environ["PATH"],
              "PYCSP_TEST_SRUN_NETNS": f"h1={hosts.netns('h1')},h2={hosts.netns('h2')}",
              "PYCSP_SSH_OPTIONS": "-o BatchMode=yes -F /nonexistent"})   # srun, not ssh
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str([hosts.address["h2"]]), result.stdout + result.stderr


@pytest.mark.timeout(60)
def test_a_channel_homed_on_loopback_cannot_go_to_another_host(hosts):
    result = run_program(hosts, """
        @pycsp.sshprocess(ssh_host="h1")
        def far(cin):
            cin()

        if __name__ == "__main__":
            a = pycsp.Channel()     # homes bind 127.0.0.1 unless configured
            try:
                far(+a)
            except ValueError as e:
                print("refused:", "pycsp.net.configure(host=...)" in str(e))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused: True", result.stdout + result.stderr


@pytest.mark.timeout(60)
def test_bad_settings_are_refused_where_they_are_given(hosts, tmp_path):
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("h1\n")
    result = run_program(hosts, """
        for make in (lambda: pycsp.sshprocess(ssh_hots="h1"),
                     lambda: pycsp.clusterprocess(cluster_hint="random")(where)()):
            try:
                make()
            except (TypeError, ValueError) as e:
                print(type(e).__name__, str(e).split(":")[0])
        try:
            pycsp.SSHProcess(where, ssh_host="h1", ssh_password="x")
        except ValueError as e:
            print("ValueError", "key" in str(e))
    """, env={"PBS_NODEFILE": str(nodefile)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "TypeError @sshprocess", "PlacementError cluster_hint='random'",
        "ValueError True"], result.stdout + result.stderr


@pytest.mark.timeout(60)
def test_localhost_runs_the_node_here_without_ssh(hosts):
    result = run_program(hosts, """
        @pycsp.sshprocess                 # 0.9.2's default ssh_host is "localhost"
        def double(cin, cout):
            cout(2 * cin())
            pycsp.retire(cout)
            return "SSH_CONNECTION" not in os.environ    # ssh sets it in its sessions

        if __name__ == "__main__":
            a, b = pycsp.Channel(), pycsp.Channel()   # homes on loopback: fine here
            d = double(+a, -b)
            got = collect(+b)
            pycsp.Parallel(producer(-a, 1), d, got)
            print(got.return_value, d.return_value)
    """, env={"PYCSP_SSH_OPTIONS": "-F /nonexistent"})   # ssh would fail
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0] True", result.stdout + result.stderr


@pytest.mark.timeout(120)
def test_a_0_9_2_program_runs_its_sshprocess_on_another_host(hosts):
    """pycsp.parallel's names, as a PyCSP 0.9.2 program uses them: the
    @process runs as a thread here, the @sshprocess on h1."""
    result = run_program(hosts, """
        from pycsp.parallel import *

        @sshprocess(ssh_host="h1")
        def source(cout):
            for i in range(5):
                cout(i)
            retire(cout)

        @process
        def sink(cin):
            total = 0
            try:
                while True:
                    total += cin()
            except ChannelRetireException:
                return total

        if __name__ == "__main__":
            Configuration().set(PYCSP_HOST, os.environ["TEST_GATEWAY"])
            c = Channel()
            s = sink(c.reader())
            Parallel(source(c.writer()), s)
            print(s.return_value)
            shutdown()
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "10", result.stdout + result.stderr
