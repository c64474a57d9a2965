"""pycsp.net's remote rendezvous round trip beside raw pyzmq, in one interleaved run.

    python benchmarks/net_rtt.py [--rounds 5] [--target 1.0] [--size 8]

Each round measures, each in fresh programs on 127.0.0.1 (the order alternates):

- ``net``: a program homes ``Channel("A")`` with one local reader process that
  reads forever; another program writes to it through ``Channel("A",
  connect=...)``. A remote write returns once the reader took the message: one
  round trip to the home's agent plus the rendezvous there. µs per write.
- ``zmq-curve``: raw pyzmq, a DEALER sends a message and waits for the ROUTER's
  reply, CurveZMQ on (as pycsp.net's links). µs per round trip.
- ``zmq-plain``: the same without CurveZMQ.

Only the writer's loop is timed (start-up, connection and a warm-up are not).
Prints the medians with min-max and the ratio net / raw per round (lower is
better; issue #16 asks for at most 1.5x raw pyzmq's).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HOME = """
import sys
import pycsp.net as pycsp
pycsp.configure(key_file=sys.argv[1], linger=0.5)
A = pycsp.Channel("A")
print(A.address[1], flush=True)

@pycsp.process
def reader(cin):
    try:
        while True:
            cin()
    except pycsp.ChannelPoisonException:
        pass

pycsp.Parallel(reader(+A))
"""

WRITER = """
import sys, time
import pycsp.net as pycsp
key_file, port, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
pycsp.configure(key_file=key_file)
cout = -pycsp.Channel("A", connect=("127.0.0.1", port))
msg = bytes(size)
for _ in range(200):
    cout(msg)
t0 = time.perf_counter()
for _ in range(n):
    cout(msg)
elapsed = time.perf_counter() - t0
cout.channel.poison()
print(elapsed / n * 1e6)
"""

RAW_SERVER = """
import sys, zmq
from zmq.utils import z85
from pycsp.net import _keys
curve = sys.argv[2] == "curve"
ctx = zmq.Context()
router = ctx.socket(zmq.ROUTER)
if curve:
    keys = _keys.read_key_file(sys.argv[1])
    router.curve_server = True
    router.curve_publickey, router.curve_secretkey = keys.public, keys.secret
port = router.bind_to_random_port("tcp://127.0.0.1")
print(port, flush=True)
while True:
    frames = router.recv_multipart(copy=False)
    if len(frames) > 1 and frames[1].bytes == b"stop":
        break
    router.send_multipart(frames, copy=False)
"""

RAW_CLIENT = """
import sys, time, zmq
from pycsp.net import _keys
key_file, port, n, size, curve = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                  int(sys.argv[4]), sys.argv[5] == "curve")
ctx = zmq.Context()
dealer = ctx.socket(zmq.DEALER)
dealer.linger = 0
if curve:
    keys = _keys.read_key_file(key_file)
    dealer.curve_serverkey = keys.public
    dealer.curve_publickey, dealer.curve_secretkey = keys.public, keys.secret
dealer.connect(f"tcp://127.0.0.1:{port}")
msg = bytes(size)
for _ in range(200):
    dealer.send(msg)
    dealer.recv()
t0 = time.perf_counter()
for _ in range(n):
    dealer.send(msg)
    dealer.recv()
elapsed = time.perf_counter() - t0
dealer.send(b"stop")
time.sleep(0.05)
print(elapsed / n * 1e6)
"""


def python(source, *args, **kwargs):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(source), *map(str, args)],
                            stdout=subprocess.PIPE, text=True, env=env, **kwargs)


def measure(kind, key_file, n, size):
    """µs per round trip of one ``kind`` with ``n`` timed operations."""
    if kind == "net":
        server = python(HOME, key_file)
        client_source, extra = WRITER, ()
    else:
        mode = kind.split("-")[1]
        server = python(RAW_SERVER, key_file, mode)
        client_source, extra = RAW_CLIENT, (mode,)
    try:
        port = int(server.stdout.readline())
        client = python(client_source, key_file, port, n, size, *extra)
        out, _ = client.communicate(timeout=300)
        if client.returncode != 0:
            raise RuntimeError(f"{kind}: the client failed")
        server.wait(timeout=30)
        return float(out)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--target", type=float, default=1.0,
                        help="seconds of each timed loop (calibrated in round 1)")
    parser.add_argument("--size", type=int, default=8, help="message bytes")
    args = parser.parse_args()
    kinds = ["net", "zmq-curve", "zmq-plain"]
    with tempfile.TemporaryDirectory() as folder:
        key_file = os.path.join(folder, "bench.key")
        subprocess.run([sys.executable, "-m", "pycsp.net.keys", "new", key_file], check=True,
                       capture_output=True, cwd=ROOT)
        counts = {kind: max(1000, int(args.target / (measure(kind, key_file, 1000, args.size)
                                                     * 1e-6))) for kind in kinds}
        results = {kind: [] for kind in kinds}
        for round_number in range(args.rounds):
            order = kinds if round_number % 2 == 0 else kinds[::-1]
            for kind in order:
                results[kind].append(measure(kind, key_file, counts[kind], args.size))
            print(f"round {round_number + 1}: " + ", ".join(
                f"{kind} {results[kind][-1]:.1f} µs" for kind in kinds), flush=True)
    print(f"\n{args.size}-byte messages, {args.rounds} rounds, medians (min-max); "
          f"ratio net / raw per round\n")
    print("| what | µs per round trip | net / this, per round |")
    print("| --- | ---: | ---: |")
    for kind in kinds:
        values = results[kind]
        ratios = [n / v for n, v in zip(results["net"], values)]
        print(f"| {kind} | {statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"
              f" | {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |")


if __name__ == "__main__":
    main()
