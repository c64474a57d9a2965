"""Instructions per plain remote write of pycsp.net, per thread, beside raw pyzmq's (issue #16).

    python benchmarks/net_instructions.py [--side client,home] [--n-low 1000] [--n-high 3000]
                                          [--tree DIR]

On this machine the wall clock of a round trip swings 2x from run to run (every wake of
a thread on a halted vCPU costs tens of us: RESULTS.md, fifteenth session), so what a
change to the request path saves is counted here instead.  Each side is measured by
itself: its program runs under ``valgrind --tool=callgrind --separate-threads=yes``
(children followed: the home's agent is a fresh interpreter, its reader a forked
process), the other side at full speed.  Per write = (instructions of the run of
``--n-high`` writes - those of the run of ``--n-low``) / (n-high - n-low), for each
thread that ran the loop.  Two programs of each kind:

    client   ours: a CSP program writing 8 bytes through Channel("A", connect=) to a home
             whose reader waits; raw: a pyzmq DEALER sending 8 bytes and receiving the echo
             (net.py's zmq-rtt client)
    home     ours: the program that homes "A" (its agent and its reader process); raw:
             net.py's zmq-rtt server (a ROUTER that echoes with recv_multipart and
             send_multipart)

No CurveZMQ (its cost is libzmq's, the same in both); heartbeat_timeout=600 so that the
slowed program is not declared dead.  The home's reader is forked with os.fork, not by
Parallel: valgrind has no pidfd_open.  Needs valgrind; a few minutes.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.path.realpath(sys.executable)  # the interpreter itself, not a launcher script
WARM_UP = 200

HOME = """
import os, sys, warnings
import pycsp.net as pycsp
warnings.simplefilter("ignore", pycsp.InsecureLinkWarning)
pycsp.configure(security="none", host="127.0.0.1", linger=0.5, heartbeat_timeout=600)
channel = pycsp.Channel("A")
cin = +channel
print("ready", channel.address[1], flush=True)
reader = os.fork()
if reader == 0:
    try:
        while True:
            cin()
    except pycsp.ChannelPoisonException:
        os._exit(0)
os.waitpid(reader, 0)
"""

CLIENT = """
import sys, warnings
import pycsp.net as pycsp
warnings.simplefilter("ignore", pycsp.InsecureLinkWarning)
pycsp.configure(security="none", linger=0.5, heartbeat_timeout=600)
port, n = int(sys.argv[1]), int(sys.argv[2])
channel = pycsp.Channel("A", connect=("127.0.0.1", port))
cout, message = -channel, bytes(8)
for _ in range(n):
    cout(message)
channel.poison()
"""

RAW_HOME = """
import zmq
context = zmq.Context()
router = context.socket(zmq.ROUTER)
print("ready", router.bind_to_random_port("tcp://127.0.0.1"), flush=True)
while True:
    identity, message = router.recv_multipart(copy=False)
    if message.bytes == b"stop":
        break
    router.send_multipart([identity, message], copy=False)
"""

RAW_CLIENT = """
import sys, time, zmq
port, n = int(sys.argv[1]), int(sys.argv[2])
context = zmq.Context()
dealer = context.socket(zmq.DEALER)
dealer.linger = 0
dealer.connect(f"tcp://127.0.0.1:{port}")
message = bytes(8)
for _ in range(n):
    dealer.send(message, copy=False)
    dealer.recv(copy=False)
dealer.send(b"stop")
time.sleep(0.05)
"""


def run_pair(home_source, client_source, measured, writes, folder, tree):
    """Run a home and a client program for ``writes`` writes, ``measured`` ("home" or
    "client") under callgrind; the folder of its output files."""
    out = os.path.join(folder, f"{measured}-{writes}")
    os.makedirs(out)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [tree, os.environ.get(
        "PYTHONPATH")])))
    valgrind = ["valgrind", "--tool=callgrind", "--separate-threads=yes", "-q",
                "--trace-children=yes", f"--callgrind-out-file={out}/cg.%p"]
    home_argv = [PYTHON, "-c", home_source]
    home = subprocess.Popen((valgrind if measured == "home" else []) + home_argv,
                            stdout=subprocess.PIPE, text=True, env=env, cwd=tree)
    try:
        line = home.stdout.readline().split()
        if len(line) != 2 or line[0] != "ready":
            raise RuntimeError(f"the home did not start: {line}")
        client_argv = [PYTHON, "-c", client_source, line[1], str(writes)]
        subprocess.run((valgrind if measured == "client" else []) + client_argv,
                       check=True, env=env, cwd=tree, timeout=1800)
        home.wait(timeout=600)
    finally:
        if home.poll() is None:
            home.kill()
            home.wait()
        home.stdout.close()
    return out


def per_thread(folder):
    """{(process label, thread number): instructions} of a run's callgrind files."""
    totals = {}
    files = glob.glob(os.path.join(folder, "cg.*-*"))
    pids = sorted({int(os.path.basename(f)[3:].split("-")[0]) for f in files})
    agents = set()
    for path in files:
        with open(path) as f:
            lines = f.read().splitlines()
        if any(line.startswith("cmd:") and "csp_ext" in line and "_agent" in line
               for line in lines):
            agents.add(int(os.path.basename(path)[3:].split("-")[0]))
    others = [pid for pid in pids if pid not in agents]
    names = {pid: "agent" for pid in agents}
    names.update({pid: ("program", "reader", "process")[min(i, 2)] for i, pid in
                  enumerate(others)})
    for path in files:
        pid, thread = os.path.basename(path)[3:].split("-")
        with open(path) as f:
            summary = next(line for line in f if line.startswith("summary:"))
        totals[(names[int(pid)], int(thread))] = int(summary.split()[1])
    return totals


def measure(kind, measured, n_low, n_high, folder, tree):
    sources = {"ours": (HOME, CLIENT), "raw": (RAW_HOME, RAW_CLIENT)}[kind]
    low = per_thread(run_pair(*sources, measured, WARM_UP + n_low, os.path.join(folder, kind),
                              tree))
    high = per_thread(run_pair(*sources, measured, WARM_UP + n_high, os.path.join(
        folder, kind), tree))
    return {key: (high[key] - low.get(key, 0)) / (n_high - n_low) for key in high}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", default="client,home")
    parser.add_argument("--n-low", type=int, default=1000)
    parser.add_argument("--n-high", type=int, default=3000)
    parser.add_argument("--tree", default=ROOT, help="the pycsp source tree (built in place)")
    opts = parser.parse_args(argv)
    tree = os.path.abspath(opts.tree)
    print(f"instructions per plain remote write of 8 bytes (callgrind, ({opts.n_high} - "
          f"{opts.n_low} writes) / {opts.n_high - opts.n_low}), tree {tree}\n")
    print("| side | process, thread | ours | raw pyzmq |")
    print("| --- | --- | ---: | ---: |")
    with tempfile.TemporaryDirectory() as folder:
        for side in opts.side.split(","):
            ours = measure("ours", side, opts.n_low, opts.n_high, folder, tree)
            raw = measure("raw", side, opts.n_low, opts.n_high, folder, tree)
            for key in sorted(set(ours) | set(raw)):
                mine, theirs = ours.get(key), raw.get(key)
                if max(abs(mine or 0), abs(theirs or 0)) < 200:
                    continue  # a thread that took no part in the loop
                label = f"{key[0]}, thread {key[1]}{' (main)' if key[1] == 1 else ''}"
                print(f"| {side} | {label} | {'' if mine is None else f'{mine:,.0f}'} | "
                      f"{'' if theirs is None else f'{theirs:,.0f}'} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
