"""Threads of one OS process using pycsp.processes channels: the shared-memory
code under ThreadSanitizer (it cannot see other processes).  Usage:
tsan_shm_threads.py [N]; prints the counts and True."""
import sys, threading
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
out = []
ts = [threading.Thread(target=writer, args=(a.writer(), "a")) for _ in range(2)]
ts += [threading.Thread(target=writer, args=(b.writer(), "b")) for _ in range(2)]
ts += [threading.Thread(target=alt_reader, args=(a.reader(), b.reader(), out)) for _ in range(2)]
for t in ts: t.start()
for t in ts: t.join()
print(out, sum(out) == 4 * N)
sys.exit(0 if sum(out) == 4 * N else 1)
