"""pycsp.net beside what a user would otherwise pick, in one interleaved run (issue #16, item 6).

    python benchmarks/net.py [--rounds 5] [--target 1.0] [--only KIND,...] [--json PATH]
    python benchmarks/net.py --hosts     # server and client in two network namespaces
                                         # joined by veth (root; tests/nethosts.py)

Every measurement is a fresh server program and a fresh client program (two
hosts under ``--hosts``); only the client's loop is timed, after a warm-up,
for about ``--target`` seconds.  Each round runs every kind once, in the
opposite order every other round.  Kinds:

    net-rtt          pycsp.net: the client writes 8 bytes through Channel("A", connect=)
                     to a channel homed in the server program, whose local reader
                     process waits; a write returns once the reader took the message
    net-plain-rtt    the same with security="none" (no CurveZMQ)
    zmq-curve-rtt    raw pyzmq DEALER/ROUTER ping-pong of 8 bytes, CurveZMQ on
    zmq-rtt          the same without CurveZMQ
    mpc-rtt          multiprocessing.connection over TCP with an authkey, pickled ints
    092-rtt          PyCSP 0.9.2: Channel("A", connect=) to a channel that another 0.9.2
                     program hosts, whose reader (a thread process) waits
    net-64M-write    a 64 MiB numpy array written by the client to the home's local reader
    net-64M-read     the same array written by the home's local writer, read by the client
    net-plain-64M-write, net-plain-64M-read   the same with security="none"
    zmq-curve-64M    raw pyzmq: the array sent with copy=False and acknowledged, CurveZMQ on
    zmq-64M          the same without CurveZMQ
    mpc-64M          multiprocessing.connection: send_bytes of the array's buffer, acknowledged
    net-alt-ready    alternation across two homes: home programs H1 and H2 home channels A
                     and B; the alternating program P loops on AltSelect(+A, +B) and
                     answers each message with a plain write on the reply channel RA or RB
                     homed at the home that wrote it, which that home's process reads before
                     it writes again.  P answers a home's message once the other home's
                     message came (one iteration later), so the homes take turns.  Here
                     the writer is already waiting when P alternates (variant (a)): the
                     guard tried commits at ARM, one round trip per guard tried.  us per
                     iteration (one AltSelect and one reply write), timed in P
    net-alt-late     the same, but a home's process writes only once P's guard is armed
                     there (it polls its channel's statistics() for the proxy offer):
                     variant (b), every guard ARMed, then CLAIM/ANSWER
    net-alt-both-ready, net-alt-both-late   the same two, the homes' processes alternating
                     too: they write with AltSelect(OutputGuard(A, msg))
    commstime        Commstime on pycsp.processes (pycsp/bench/kernels.py), us per communication
    commstime-net    the same kernel with pycsp.net imported (``--backend pycsp.net``); not
                     run under --hosts (nothing crosses a network)

Round trips are in us, the arrays in GB/s (1e9 bytes/s).  The ratios of
issue #16 are taken per round (each from figures of the same round) and
printed as medians with min-max, with the target beside; two more say how far
anything built on pyzmq could go against PyCSP 0.9.2 and multiprocessing.connection
(raw pyzmq's own ratio to them: no layer above it is faster).  For the alternation
kinds P also reports where each iteration went: the AltSelect and the reply
write timed apart, and its requests to the homes per iteration, counted by
kind (ARMs answered ARMED or committed, ANSWERs, DISARMs, WRITEs); under
``--hosts`` H1, P and H2 are three namespace hosts.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREE = ROOT  # the pycsp source tree measured (--tree)
BIG = 64 * 1024 * 1024
SMALL = 8
AUTHKEY = b"pycsp-net-bench"
PYCSP092_DEFAULTS = ("/tmp/bench-venv092/bin/python", "/work/peers/pycsp092/bin/python")

KINDS = ("net-rtt", "net-plain-rtt", "zmq-curve-rtt", "zmq-rtt", "mpc-rtt", "092-rtt",
         "net-64M-write", "net-64M-read", "net-plain-64M-write", "net-plain-64M-read",
         "zmq-curve-64M", "zmq-64M",
         "mpc-64M", "net-alt-ready", "net-alt-late", "net-alt-both-ready", "net-alt-both-late",
         "commstime", "commstime-net")
LOCAL_ONLY = ("commstime", "commstime-net")
ALT_KINDS = ("net-alt-ready", "net-alt-late", "net-alt-both-ready", "net-alt-both-late")
WARM_UP = 200  # calls before a round trip's timed loop (seconds_per_call)


def unit(kind):
    return "GB/s" if "64M" in kind else "us"


# (name, numerator, denominator, how the per-round ratio is taken, target, met)
RATIOS = (
    ("remote rtt / raw pyzmq Curve rtt", "net-rtt", "zmq-curve-rtt", "<= 1.5",
     lambda r: r <= 1.5),
    ("remote rtt / raw pyzmq rtt", "net-rtt", "zmq-rtt", "<= 1.5", lambda r: r <= 1.5),
    ("remote rtt (no Curve) / raw pyzmq rtt", "net-plain-rtt", "zmq-rtt", "", None),
    ("PyCSP 0.9.2 rtt / remote rtt", "092-rtt", "net-rtt", ">= 3", lambda r: r >= 3),
    # the most that anything built on pyzmq could reach against 0.9.2 and against
    # multiprocessing.connection: raw pyzmq itself against them
    ("PyCSP 0.9.2 rtt / raw pyzmq Curve rtt (the bound on pyzmq)", "092-rtt", "zmq-curve-rtt",
     "", None),
    ("remote rtt / multiprocessing.connection rtt", "net-rtt", "mpc-rtt", "", None),
    ("64M write / raw pyzmq copy=False", "net-64M-write", "zmq-64M", ">= 0.8",
     lambda r: r >= 0.8),
    ("64M write / raw pyzmq Curve copy=False", "net-64M-write", "zmq-curve-64M", "", None),
    ("64M write (no Curve) / raw pyzmq copy=False", "net-plain-64M-write", "zmq-64M", "",
     None),
    ("64M read / raw pyzmq copy=False", "net-64M-read", "zmq-64M", "", None),
    ("64M read (no Curve) / raw pyzmq copy=False", "net-plain-64M-read", "zmq-64M", "",
     None),
    ("64M write / multiprocessing.connection", "net-64M-write", "mpc-64M", ">= 4",
     lambda r: r >= 4),
    ("raw pyzmq copy=False / multiprocessing.connection (the bound on pyzmq)", "zmq-64M",
     "mpc-64M", "", None),
    *((f"{kind} iteration / raw pyzmq Curve rtt", kind, "zmq-curve-rtt", "<= 2.5",
       lambda r: r <= 2.5) for kind in ALT_KINDS),
    *((f"{kind} AltSelect alone / raw pyzmq Curve rtt", f"{kind}:alt", "zmq-curve-rtt", "",
       None) for kind in ALT_KINDS),
    # how many remote round trips (a plain remote write's) an iteration costs
    *((f"{kind} iteration / remote rtt", kind, "net-rtt", "", None) for kind in ALT_KINDS),
    ("Commstime with pycsp.net / without", "commstime-net", "commstime", "<= 1.05",
     lambda r: r <= 1.05),
)


# -- timing (in the client) ---------------------------------------------------------

def seconds_per_call(call, target, warm_up, batch, at_least):
    """Seconds per ``call()``: after ``warm_up`` calls, batches of ``batch`` until
    ``target`` seconds and ``at_least`` calls have passed."""
    for _ in range(warm_up):
        call()
    calls = 0
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            call()
        calls += batch
        elapsed = time.perf_counter() - start
        if elapsed >= target and calls >= at_least:
            return elapsed / calls


def figure(kind, call, target):
    """The client's figure for ``kind``: us per call, or GB/s of the 64 MiB array."""
    if unit(kind) == "GB/s":
        return BIG / seconds_per_call(call, target, 2, 1, 4) / 1e9
    return seconds_per_call(call, target, WARM_UP, 100, 1000) * 1e6


def big_array():
    import numpy
    return numpy.ones(BIG, dtype=numpy.uint8)


def ready(port):
    print("ready", port, flush=True)


# -- pycsp.net -----------------------------------------------------------------------

def net_configure(kind, key_file, host=None):
    import warnings
    import pycsp.net as pycsp
    if "plain" in kind:
        warnings.simplefilter("ignore", pycsp.InsecureLinkWarning)
        pycsp.configure(security="none", host=host, linger=0.5)
    else:
        pycsp.configure(key_file=key_file, host=host, linger=0.5)
    return pycsp


def serve_net(kind, host, key_file):
    pycsp = net_configure(kind, key_file, host)
    channel = pycsp.Channel("A")
    ready(channel.address[1])
    reads = kind.endswith("64M-read")
    message = big_array() if reads else None

    @pycsp.process
    def reader(cin):
        while True:
            cin()

    @pycsp.process
    def writer(cout):
        while True:
            cout(message)

    try:
        pycsp.Parallel(writer(-channel) if reads else reader(+channel))
    except pycsp.ChannelPoisonException:
        pass


def client_net(kind, host, port, key_file, target):
    pycsp = net_configure(kind, key_file)
    channel = pycsp.Channel("A", connect=(host, port))
    if kind.endswith("64M-read"):
        result = figure(kind, +channel, target)
    else:
        cout = -channel
        message = big_array() if unit(kind) == "GB/s" else bytes(SMALL)
        result = figure(kind, lambda: cout(message), target)
    channel.poison()
    return result


# -- pycsp.net: alternation across two homes ----------------------------------------------

def serve_net_alt(kind, host, key_file, index):
    """Home H1 (index 1: channels A, RA) or H2 (index 2: B, RB): its process
    writes to its channel, then reads P's answer, until poisoned."""
    pycsp = net_configure(kind, key_file, host)
    name = "AB"[int(index) - 1]
    channel, answers = pycsp.Channel(name), pycsp.Channel("R" + name)
    ready(channel.address[1])
    late, alternates = kind.endswith("-late"), "-both" in kind
    message = bytes(SMALL)

    def wait_for_the_armed_guard():
        # P's ARM that found no writer left a proxy offer in the channel's queue
        while True:
            stats = channel.statistics()
            if stats["proxy_readers"] or stats["poisoned"]:
                return
            os.sched_yield()

    @pycsp.process
    def home(cout, cin):
        while True:
            if late:
                wait_for_the_armed_guard()
            if alternates:
                pycsp.AltSelect(pycsp.OutputGuard(cout, message))
            else:
                cout(message)
            cin()

    try:
        pycsp.Parallel(home(-channel, +answers))
    except pycsp.ChannelPoisonException:
        pass


def count_requests(counts):
    """Count this process's requests to homes in ``counts``, by kind: ARM split
    into those answered ARMED and those that committed at once."""
    from pycsp.net import _remote, _wire
    names = {_wire.ANSWER: "ANSWER", _wire.WRITE: "WRITE", _wire.READ: "READ"}
    request, send_only = _remote._Link.request, _remote._Link.send_only

    def counted_request(self, op, *args, **kwargs):
        header, reply = request(self, op, *args, **kwargs)
        if op == _wire.ARM:
            counts["ARM armed" if header.op == _wire.ARMED else "ARM committed"] += 1
        else:
            counts[names.get(op, str(op))] += 1
        return header, reply

    def counted_send_only(self, op, *args, **kwargs):
        counts["DISARM" if op == _wire.DISARM else str(op)] += 1
        return send_only(self, op, *args, **kwargs)

    _remote._Link.request, _remote._Link.send_only = counted_request, counted_send_only


def client_net_alt(kind, hosts, ports, key_file, target):
    """P: AltSelect over A (homed at H1) and B (at H2); each message answered on
    its home's reply channel once the other home's message came."""
    import collections
    pycsp = net_configure(kind, key_file)
    homes = list(zip(hosts.split(","), map(int, ports.split(","))))
    channels = [pycsp.Channel(name, connect=home) for name, home in zip("AB", homes)]
    answers = [pycsp.Channel("R" + name, connect=home) for name, home in zip("AB", homes)]
    ends = [+channel for channel in channels]
    answer_ends = [-channel for channel in answers]
    counts = collections.Counter()
    count_requests(counts)
    state = {"calls": 0, "waiting": None, "last": None, "alt": 0.0, "answer": 0.0}

    def iteration():
        state["calls"] += 1
        if state["calls"] == WARM_UP + 1:  # the timed loop starts: count from here
            counts.clear()
            state["alt"] = state["answer"] = 0.0
        start = time.perf_counter()
        guard, msg = pycsp.AltSelect(ends[0], ends[1])
        chosen = 0 if guard is ends[0] else 1
        chose = time.perf_counter()
        if state["waiting"] is not None:
            answer_ends[state["waiting"]](msg)
        done = time.perf_counter()
        state["alt"] += chose - start
        state["answer"] += done - chose
        counts["from H1" if chosen == 0 else "from H2"] += 1
        if chosen == state["last"]:
            counts["same home twice"] += 1
        state["waiting"] = state["last"] = chosen

    result = figure(kind, iteration, target)
    timed = state["calls"] - WARM_UP
    print("detail", json.dumps({
        "alt": state["alt"] / timed * 1e6, "answer": state["answer"] / timed * 1e6,
        "per iteration": {k: v / timed for k, v in sorted(counts.items())}}))
    for channel in channels + answers:
        channel.poison()
    return result


# -- raw pyzmq: one ping-pong, one acknowledged transfer -------------------------------

def zmq_socket(context, kind, socket_type, server):
    import zmq
    sock = context.socket(socket_type)
    sock.linger = 0
    if "curve" in kind:
        public, secret = (os.environ[f"BENCH_CURVE_{part}"].encode()
                          for part in ("PUBLIC", "SECRET"))
        if server:
            sock.curve_server = True
            sock.curve_publickey, sock.curve_secretkey = public, secret
        else:
            sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
            sock.curve_serverkey = public
    return sock


def serve_zmq(kind, host):
    import zmq
    context = zmq.Context()
    router = zmq_socket(context, kind, zmq.ROUTER, server=True)
    ready(router.bind_to_random_port(f"tcp://{host}"))
    while True:
        identity, message = router.recv_multipart(copy=False)
        if len(message) == 4 and message.bytes == b"stop":  # .bytes copies
            break
        # the transfer is acknowledged; the ping-pong echoes
        router.send_multipart([identity, b"ok" if len(message) == BIG else message],
                              copy=False)
    router.close()
    context.term()


def client_zmq(kind, host, port, target):
    import zmq
    context = zmq.Context()
    dealer = zmq_socket(context, kind, zmq.DEALER, server=False)
    dealer.connect(f"tcp://{host}:{port}")
    message = big_array() if unit(kind) == "GB/s" else bytes(SMALL)

    def ping_pong():
        dealer.send(message, copy=False)
        dealer.recv(copy=False)

    result = figure(kind, ping_pong, target)
    dealer.send(b"stop")
    time.sleep(0.05)  # linger 0: let the stop leave
    dealer.close()
    context.term()
    return result


# -- multiprocessing.connection --------------------------------------------------------

def serve_mpc(kind, host):
    from multiprocessing.connection import Listener
    with Listener((host, 0), authkey=AUTHKEY) as listener:
        ready(listener.address[1])
        with listener.accept() as conn:
            if unit(kind) == "GB/s":
                buffer = bytearray(BIG)
                while conn.recv_bytes_into(buffer) == BIG:
                    conn.send(b"ok")
            else:
                while (message := conn.recv()) is not None:
                    conn.send(message)


def client_mpc(kind, host, port, target):
    from multiprocessing.connection import Client
    with Client((host, port), authkey=AUTHKEY) as conn:
        if unit(kind) == "GB/s":
            view = memoryview(big_array())

            def ping_pong():
                conn.send_bytes(view)
                conn.recv()
            result = figure(kind, ping_pong, target)
            conn.send_bytes(b"stop")
        else:
            def ping_pong():
                conn.send(12345)
                conn.recv()
            result = figure(kind, ping_pong, target)
            conn.send(None)
    return result


# -- PyCSP 0.9.2 (its own interpreter; imports only what it has) -----------------------

def serve_092():
    import pycsp.parallel as pycsp  # 0.9.2's: binds PYCSP_HOST
    channel = pycsp.Channel("A")
    ready(channel.address[1])

    @pycsp.process
    def reader(cin):
        while True:
            cin()

    pycsp.Parallel(reader(channel.reader()))
    pycsp.shutdown()


def client_092(kind, host, port, target):
    import pycsp.parallel as pycsp
    channel = pycsp.Channel("A", connect=(host, port))
    cout = channel.writer()
    message = bytes(SMALL)
    result = figure(kind, lambda: cout(message), target)
    pycsp.poison(cout)
    pycsp.shutdown()
    return result


# -- the roles ---------------------------------------------------------------------------

def serve(kind, host, key_file, index=None):
    if kind in ALT_KINDS:
        serve_net_alt(kind, host, key_file, index)
    elif kind.startswith("net"):
        serve_net(kind, host, key_file)
    elif kind.startswith("zmq"):
        serve_zmq(kind, host)
    elif kind.startswith("mpc"):
        serve_mpc(kind, host)
    else:
        serve_092()


def client(kind, host, port, key_file, target):
    if kind in ALT_KINDS:
        return client_net_alt(kind, host, port, key_file, target)
    if kind.startswith("net"):
        return client_net(kind, host, port, key_file, target)
    if kind.startswith("zmq"):
        return client_zmq(kind, host, port, target)
    if kind.startswith("mpc"):
        return client_mpc(kind, host, port, target)
    return client_092(kind, host, port, target)


# -- the driver ----------------------------------------------------------------------------

class Places:
    """Where the programs run: all on this host (loopback), or in namespace hosts
    joined by veth: the server (H1) on h1, the client (P) on h2, and the second
    home of the alternation kinds (H2) on h3."""

    def __init__(self, hosts=None):
        self.hosts = hosts
        if hosts:
            self.server_prefix = hosts.run_argv("h1", [])
            self.client_prefix = hosts.run_argv("h2", [])
            self.address = hosts.address["h1"]
            self.client_address = hosts.address["h2"]
            self.where = (f"veth between two namespace hosts ({hosts.address['h2']} -> "
                          f"{hosts.address['h1']})")
            if "h3" in hosts.address:
                self.second_prefix = hosts.run_argv("h3", [])
                self.second_address = hosts.address["h3"]
                self.where += f"; the second home on a third ({self.second_address})"
        else:
            self.server_prefix = self.client_prefix = self.second_prefix = []
            self.address = self.client_address = self.second_address = "127.0.0.1"
            self.where = "loopback (127.0.0.1)"


def environment(kind, address, curve_keys=None):
    """The environment of a program of ``kind`` on the host at ``address``."""
    env = dict(os.environ)
    if kind.startswith("092"):
        env.pop("PYTHONPATH", None)  # its own pycsp, not this tree's
        env["PYCSP_HOST"] = address  # where 0.9.2 binds its own socket
    else:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [TREE, env.get("PYTHONPATH")]))
    if curve_keys:
        env["BENCH_CURVE_PUBLIC"], env["BENCH_CURVE_SECRET"] = curve_keys
    return env


def start_server(prefix, role, kind, address, key_file, env, cwd, *extra):
    """A server program and the port it listens on (it says "ready PORT")."""
    server = subprocess.Popen(prefix + role + ["server", kind, address, key_file, *extra],
                              stdout=subprocess.PIPE, text=True, env=env, cwd=cwd)
    line = server.stdout.readline().split()
    if len(line) != 2 or line[0] != "ready":
        server.kill()
        server.wait()
        server.stdout.close()
        raise RuntimeError(f"{kind}: the server did not start ({line})")
    return server, line[1]


def measure(kind, places, opts, key_file):
    """One figure of ``kind`` from fresh programs, and the client's details
    (the alternation kinds': where an iteration went), or None."""
    if kind in LOCAL_ONLY:
        return commstime(kind, opts), None
    python = opts.pycsp092 if kind.startswith("092") else sys.executable
    curve_keys = None
    if kind.startswith("zmq-curve"):
        import zmq
        curve_keys = tuple(key.decode() for key in zmq.curve_keypair())
    env = environment(kind, places.address, curve_keys)
    client_env = environment(kind, places.client_address, curve_keys)
    # 0.9.2 runs from a folder without this tree's pycsp (its package is also pycsp)
    cwd = tempfile.gettempdir() if kind.startswith("092") else TREE
    me = os.path.abspath(__file__)
    role = [python, me, "--role"]
    servers = []
    try:
        if kind in ALT_KINDS:
            homes = ((places.server_prefix, places.address, "1"),
                     (places.second_prefix, places.second_address, "2"))
            for prefix, address, index in homes:
                servers.append(start_server(prefix, role, kind, address, key_file,
                                            environment(kind, address), cwd, index))
            host = ",".join(address for _, address, _ in homes)
            port = ",".join(port for _, port in servers)
        else:
            servers.append(start_server(places.server_prefix, role, kind, places.address,
                                        key_file, env, cwd))
            host, port = places.address, servers[0][1]
        out = subprocess.run(places.client_prefix + role + [
            "client", kind, host, port, key_file, str(opts.target)],
            capture_output=True, text=True, env=client_env, cwd=cwd, timeout=opts.timeout)
        if out.returncode != 0:
            raise RuntimeError(f"{kind}: the client failed: {out.stderr[-2000:]}")
        for server, _ in servers:
            server.wait(30)
        lines = out.stdout.split("\n")
        details = next((json.loads(line.split(None, 1)[1]) for line in lines
                        if line.startswith("detail ")), None)
        return float(out.stdout.split()[-1]), details
    finally:
        for server, _ in servers:
            if server.poll() is None:
                server.kill()
                server.wait()
            server.stdout.close()


def commstime(kind, opts):
    backend = "pycsp.net" if kind == "commstime-net" else "processes"
    env = environment(kind, "127.0.0.1")
    out = subprocess.run([sys.executable, "-m", "pycsp.bench.kernels", "--backend", backend,
                          "--kernel", "commstime", "--n", str(opts.commstime_n),
                          "--repeats", "3"],
                         capture_output=True, text=True, env=env, cwd=TREE,
                         timeout=opts.timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{kind}: failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["median"]


def spread(values, digits):
    return (f"{statistics.median(values):.{digits}f} "
            f"({min(values):.{digits}f}-{max(values):.{digits}f})")


def per_round_ratios(figures, numerator, denominator):
    """numerator / denominator in each round where both ran."""
    return [n / d for n, d in zip(figures.get(numerator, []), figures.get(denominator, []))
            if n is not None and d is not None]


def alternation_table(figures, details):
    """Where an iteration of each alternation kind went, medians over the rounds."""
    if not any(d for values in details.values() for d in values):
        return
    print("\n| alternation kind | iteration | AltSelect | reply write | requests per iteration "
          "(medians) |\n| --- | ---: | ---: | ---: | --- |")
    for kind, values in details.items():
        rounds = [d for d in values if d]
        if not rounds:
            continue
        iteration = [v for v in figures[kind] if v is not None]
        names = sorted({name for d in rounds for name in d["per iteration"]})
        requests = ", ".join(
            f"{name} {statistics.median(d['per iteration'].get(name, 0) for d in rounds):.2f}"
            for name in names)
        print(f"| {kind} | {spread(iteration, 1)} | {spread([d['alt'] for d in rounds], 1)} "
              f"| {spread([d['answer'] for d in rounds], 1)} | {requests} |")


def report(figures, details, rounds, where, failures):
    print(f"\npycsp.net over {where}, {rounds} rounds, medians (min-max)\n")
    print("| what | median (min-max) | unit |\n| --- | ---: | --- |")
    for kind, values in figures.items():
        values = [v for v in values if v is not None]
        if values:
            print(f"| {kind} | {spread(values, 3 if unit(kind) == 'GB/s' else 1)} "
                  f"| {unit(kind)} |")
    alternation_table(figures, details)
    series = dict(figures)  # and each alternation kind's AltSelect part, as KIND:alt
    for kind, values in details.items():
        series[f"{kind}:alt"] = [d["alt"] if d else None for d in values]
    print("\n| ratio, per round | median (min-max) | target | met |\n| --- | ---: | --- | --- |")
    for name, numerator, denominator, target, met in RATIOS:
        ratios = per_round_ratios(series, numerator, denominator)
        if ratios:
            verdict = "" if met is None else ("yes" if met(statistics.median(ratios)) else "no")
            print(f"| {name} | {spread(ratios, 2)} | {target} | {verdict} |")
    for kind, why in failures.items():
        print(f"\n{kind}: FAILED: {why}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--target", type=float, default=1.0,
                        help="seconds of each timed loop")
    parser.add_argument("--only", default=None, help="comma list of kinds (default: all)")
    parser.add_argument("--hosts", action="store_true",
                        help="server and client on two hosts made of network namespaces")
    parser.add_argument("--pycsp092", default=os.environ.get("PYCSP092_PYTHON") or next(
        (p for p in PYCSP092_DEFAULTS if os.path.exists(p)), PYCSP092_DEFAULTS[0]),
        help="PyCSP 0.9.2's interpreter")
    parser.add_argument("--commstime-n", type=int, default=100000,
                        help="Commstime cycles per measurement")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per client")
    parser.add_argument("--tree", default=ROOT,
                        help="the pycsp source tree to measure, built in place (default: this one)")
    parser.add_argument("--json")
    parser.add_argument("--role", choices=("server", "client"), help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    global TREE
    TREE = os.path.abspath(opts.tree)
    if opts.role == "server":
        serve(*opts.args)
        return 0
    if opts.role == "client":
        kind, host, port, key_file, target = opts.args
        print(client(kind, host, port if kind in ALT_KINDS else int(port), key_file,
                     float(target)))
        return 0
    kinds = opts.only.split(",") if opts.only else [
        k for k in KINDS if not (opts.hosts and k in LOCAL_ONLY)]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    if any(k.startswith("092") for k in kinds) and not os.path.exists(opts.pycsp092):
        print(f"no PyCSP 0.9.2 at {opts.pycsp092} (--pycsp092): its kinds are left out",
              file=sys.stderr)
        kinds = [k for k in kinds if not k.startswith("092")]
    hosts = None
    if opts.hosts:
        sys.path.insert(0, os.path.join(ROOT, "tests"))
        from nethosts import NetHosts
        hosts = NetHosts(3 if set(kinds) & set(ALT_KINDS) else 2).__enter__()
    figures = {kind: [] for kind in kinds}
    details = {kind: [] for kind in kinds if kind in ALT_KINDS}
    failures = {}
    try:
        places = Places(hosts)
        with tempfile.TemporaryDirectory() as folder:
            key_file = os.path.join(folder, "bench.key")
            subprocess.run([sys.executable, "-m", "pycsp.net.keys", "new", key_file],
                           check=True, capture_output=True, cwd=TREE,
                           env=environment("net", places.address))
            for round_number in range(opts.rounds):
                order = kinds if round_number % 2 == 0 else kinds[::-1]
                for kind in order:
                    result, detail = None, None
                    if kind not in failures:
                        try:
                            result, detail = measure(kind, places, opts, key_file)
                        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                            failures[kind] = str(exc)
                    figures[kind].append(result)
                    if kind in details:
                        details[kind].append(detail)
                print(f"round {round_number + 1}: " + ", ".join(
                    f"{k} {figures[k][-1]:.3g}" for k in kinds if figures[k][-1] is not None),
                    file=sys.stderr, flush=True)
    finally:
        if hosts:
            hosts.__exit__(None, None, None)
    report(figures, details, opts.rounds, places.where, failures)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"where": places.where, "figures": figures, "details": details,
                       "failures": failures}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
