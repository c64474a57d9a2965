"""Threads of one OS process using pycsp.processes channels: the shared-memory
code under ThreadSanitizer (it cannot see other processes).  Usage:
tsan_shm_threads.py [N]; prints the counts and True."""
import sys, threading
import csp_ext
import pycsp.processes as csp
N = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
a, b = csp.Channel(), csp.Channel(buffer=3)
def writer(w, tag):
    for i in range(N): w((tag, i))
def alt_reader(ra, rb, out):
    got = 0
    while got < 2 * N:
        g, msg = csp.AltSelect(csp.InputGuard(ra), csp.InputGuard(rb))
        got += 1
    out.append(got)
def agent(chans, stop, pokes):
    """pycsp.net's agent: proxy offers armed again and again while the
    channels run (csp_ext._ShmProxy; every pop of one pokes it)."""
    proxy = csp_ext._ShmProxy()
    n = 0
    while not stop.is_set():
        for ch in chans:
            for is_write in (False, True):
                proxy.arm(ch, is_write)
        n += proxy.wait(0.001)
    proxy.close()
    pokes.append(n)
out, pokes, stop = [], [], threading.Event()
proxied = threading.Thread(target=agent, args=((a, b), stop, pokes))
proxied.start()
ts = [threading.Thread(target=writer, args=(a.writer(), "a")) for _ in range(2)]
ts += [threading.Thread(target=writer, args=(b.writer(), "b")) for _ in range(2)]
ts += [threading.Thread(target=alt_reader, args=(a.reader(), b.reader(), out)) for _ in range(2)]
for t in ts: t.start()
for t in ts: t.join()
stop.set()
proxied.join()
print(out, pokes, sum(out) == 4 * N)
sys.exit(0 if sum(out) == 4 * N else 1)
