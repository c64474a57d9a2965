"""The floors pycsp.net is measured against (issue #16, item 6): what the parts it
is built on cost by themselves, between two OS processes over TCP.

    zmq-rtt          pyzmq DEALER/ROUTER ping-pong of a small message (us per round trip)
    zmq-curve-rtt    the same with CurveZMQ on the link (pycsp.net's default)
    mpc-rtt          multiprocessing.connection over TCP with an authkey, pickled ints
    zmq-64M          a 64 MiB numpy array sent with copy=False, acknowledged (GB/s)
    mpc-64M          the same array through multiprocessing.connection (send_bytes of its buffer)

Each measurement starts a fresh server and client (two processes, as two hosts
would run them), rounds interleaved; medians with min-max.

    python benchmarks/net_floors.py [--rounds 5] [--only zmq-rtt,mpc-rtt]
    python benchmarks/net_floors.py --hosts     # server and client in two network
                                                # namespaces joined by veth (root;
                                                # tests/nethosts.py)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

RTT_ROUNDS = 20_000
BIG = 64 * 1024 * 1024
BIG_REPEATS = 8
PORT = 47_310

FLOORS = ('zmq-rtt', 'zmq-curve-rtt', 'mpc-rtt', 'zmq-64M', 'mpc-64M')
UNITS = {'zmq-rtt': 'us/rtt', 'zmq-curve-rtt': 'us/rtt', 'mpc-rtt': 'us/rtt',
         'zmq-64M': 'GB/s', 'mpc-64M': 'GB/s'}
AUTHKEY = b'pycsp-net-floors'


# -- the two ends, run as `net_floors.py --role server|client FLOOR HOST` -------

def _curve_keys():
    import zmq
    # Fixed keys made from a seed are not needed: both ends are this file, so the
    # server's key pair is passed to the client through the environment.
    return zmq.curve_keypair()


def _zmq_socket(ctx, kind, floor, role):
    import zmq
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    if floor == 'zmq-curve-rtt':
        server_public = os.environ['FLOOR_SERVER_PUBLIC'].encode()
        if role == 'server':
            sock.curve_secretkey = os.environ['FLOOR_SERVER_SECRET'].encode()
            sock.curve_publickey = server_public
            sock.curve_server = True
        else:
            public, secret = zmq.curve_keypair()
            sock.curve_secretkey, sock.curve_publickey = secret, public
            sock.curve_serverkey = server_public
    return sock


def serve(floor, host):
    if floor.startswith('zmq'):
        import zmq
        ctx = zmq.Context()
        sock = _zmq_socket(ctx, zmq.ROUTER, floor, 'server')
        sock.bind(f'tcp://{host}:{PORT}')
        print('ready', flush=True)
        if floor == 'zmq-64M':
            for _ in range(BIG_REPEATS + 1):
                ident, _frame = sock.recv_multipart(copy=False)
                sock.send_multipart([ident, b'ok'])
        else:
            for _ in range(RTT_ROUNDS + 100):
                ident, msg = sock.recv_multipart()
                sock.send_multipart([ident, msg])
        sock.close()
        ctx.term()
        return
    from multiprocessing.connection import Listener
    with Listener((host, PORT), authkey=AUTHKEY) as listener:
        print('ready', flush=True)
        with listener.accept() as conn:
            if floor == 'mpc-64M':
                buf = bytearray(BIG)
                for _ in range(BIG_REPEATS + 1):
                    conn.recv_bytes_into(buf)
                    conn.send(b'ok')
            else:
                for _ in range(RTT_ROUNDS + 100):
                    conn.send(conn.recv())


def client(floor, host):
    if floor == 'zmq-64M' or floor == 'mpc-64M':
        import numpy
        payload = numpy.ones(BIG, dtype=numpy.uint8)
    if floor.startswith('zmq'):
        import zmq
        ctx = zmq.Context()
        sock = _zmq_socket(ctx, zmq.DEALER, floor, 'client')
        sock.connect(f'tcp://{host}:{PORT}')
        if floor == 'zmq-64M':
            sock.send(payload, copy=False)      # warm-up: the connection and the pages
            sock.recv()
            start = time.perf_counter()
            for _ in range(BIG_REPEATS):
                sock.send(payload, copy=False)
                sock.recv()
            result = BIG * BIG_REPEATS / (time.perf_counter() - start) / 1e9
        else:
            for i in range(100):
                sock.send(b'%d' % i)
                sock.recv()
            start = time.perf_counter()
            for i in range(RTT_ROUNDS):
                sock.send(b'%d' % i)
                sock.recv()
            result = (time.perf_counter() - start) / RTT_ROUNDS * 1e6
        sock.close()
        ctx.term()
        return result
    from multiprocessing.connection import Client
    with Client((host, PORT), authkey=AUTHKEY) as conn:
        if floor == 'mpc-64M':
            view = memoryview(payload)
            conn.send_bytes(view)
            conn.recv()
            start = time.perf_counter()
            for _ in range(BIG_REPEATS):
                conn.send_bytes(view)
                conn.recv()
            return BIG * BIG_REPEATS / (time.perf_counter() - start) / 1e9
        for i in range(100):
            conn.send(i)
            conn.recv()
        start = time.perf_counter()
        for i in range(RTT_ROUNDS):
            conn.send(i)
            conn.recv()
        return (time.perf_counter() - start) / RTT_ROUNDS * 1e6


# -- the driver ----------------------------------------------------------------

def measure(floor, server_prefix, client_prefix, host):
    env = dict(os.environ)
    if floor == 'zmq-curve-rtt':
        public, secret = _curve_keys()
        env['FLOOR_SERVER_PUBLIC'], env['FLOOR_SERVER_SECRET'] = public.decode(), secret.decode()
    me = os.path.abspath(__file__)
    server = subprocess.Popen(server_prefix + [sys.executable, me, '--role', 'server', floor, host],
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        if server.stdout.readline().strip() != 'ready':
            raise RuntimeError(f'{floor}: the server did not start')
        out = subprocess.run(client_prefix + [sys.executable, me, '--role', 'client', floor, host],
                             capture_output=True, text=True, env=env, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f'{floor}: client failed: {out.stderr}')
        server.wait(60)
        return float(out.stdout.strip())
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stdout.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--only', default=','.join(FLOORS))
    parser.add_argument('--hosts', action='store_true',
                        help='server and client on two hosts made of network namespaces')
    parser.add_argument('--json')
    parser.add_argument('--role', choices=('server', 'client'), help=argparse.SUPPRESS)
    parser.add_argument('args', nargs='*', help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.role == 'server':
        serve(*opts.args)
        return 0
    if opts.role == 'client':
        print(client(*opts.args))
        return 0
    floors = [f for f in opts.only.split(',') if f]
    unknown = set(floors) - set(FLOORS)
    if unknown:
        parser.error(f'unknown floors {sorted(unknown)}; known: {", ".join(FLOORS)}')
    hosts = None
    if opts.hosts:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests'))
        from nethosts import NetHosts
        hosts = NetHosts(2).__enter__()
    try:
        if hosts:
            prefixes = (hosts.run_argv('h1', []), hosts.run_argv('h2', []), hosts.address['h1'])
            where = f'veth between two namespaces ({hosts.address["h1"]} <- {hosts.address["h2"]})'
        else:
            prefixes = ([], [], '127.0.0.1')
            where = 'loopback (127.0.0.1)'
        figures = {f: [] for f in floors}
        for _ in range(opts.rounds):
            for floor in floors:
                figures[floor].append(measure(floor, *prefixes))
    finally:
        if hosts:
            hosts.__exit__(None, None, None)
    print(f'net floors over {where}, {opts.rounds} rounds, medians (min-max)\n')
    print('| floor | median | unit |\n| --- | ---: | --- |')
    for floor, values in figures.items():
        print(f'| {floor} | {statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f}) '
              f'| {UNITS[floor]} |')
    if opts.json:
        with open(opts.json, 'w') as f:
            json.dump({'where': where, 'figures': figures}, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
