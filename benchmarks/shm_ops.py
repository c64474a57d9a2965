"""The processes backend's channel operations in one OS process, for callgrind.

callgrind cannot run the processes kernels (os.pidfd_open fails under valgrind
3.19), but the shared channels work between threads of one process, so their C
path can be counted here:

    shm_ops.py buffered N   write then read on a channel with buffer=1, N times
                            (the attempts only: lock, try, encode/decode)
    shm_ops.py pingpong N   two threads, a message there and back N times over
                            rendezvous channels, spinning off (shm_set_spin(0)):
                            every communication blocks, sleeps on the futex and
                            is finished by the peer (the wait loop, the claim)

An optional third argument is the message: int (default: the loop counter),
tuple ((i, float(i))), dict ({'i': i}), set ({i}, pickled), numpy-1K (a
uint8 array of 1 KiB, made once), to count what encoding and decoding each costs.

Instructions per communication: the difference of two runs (N and 3N) divided
by the difference in communications (N per N for buffered, 2N per N for pingpong):

    PYTHONHASHSEED=0 PYTHONPATH=TREE valgrind --tool=callgrind -q \\
        --callgrind-out-file=OUT PYTHON benchmarks/shm_ops.py pingpong 3000
"""
import sys
import threading

import csp_ext

# The loops below send the counter itself when no message is named (the figures
# recorded before messages could be named).
MESSAGES = {
    'int': lambda: None,
    'tuple': lambda: (lambda i: (i, float(i))),
    'dict': lambda: (lambda i: {'i': i}),
    'set': lambda: (lambda i: {i}),
    'numpy-1K': lambda: _same(__import__('numpy').ones(1024, dtype='uint8')),
}


def _same(obj):
    return lambda i: obj


def buffered(n, message=None):
    ch = csp_ext.ShmChannel(buffer=1)
    write, read = ch.writer(), ch.reader()
    if message is None:
        for i in range(n):
            write(i)
            read()
        return
    for i in range(n):
        write(message(i))
        read()


def pingpong(n, message=None):
    csp_ext.shm_set_spin(0.0)
    there, back = csp_ext.ShmChannel(), csp_ext.ShmChannel()
    there_w, there_r, back_w, back_r = there.writer(), there.reader(), back.writer(), back.reader()
    ready = threading.Event()

    def echo():
        # A thread counts for deadlock detection from its first channel operation:
        # make it before the main thread blocks.
        csp_ext.ShmChannel(buffer=1).writer()(0)
        ready.set()
        for _ in range(n):
            back_w(there_r())

    t = threading.Thread(target=echo)
    t.start()
    ready.wait()
    if message is None:
        for i in range(n):
            there_w(i)
            back_r()
    else:
        for i in range(n):
            there_w(message(i))
            back_r()
    t.join()


if __name__ == "__main__":
    csp_ext.shm_init()
    message = MESSAGES[sys.argv[3] if len(sys.argv) > 3 else 'int']()
    {"buffered": buffered, "pingpong": pingpong}[sys.argv[1]](int(sys.argv[2]), message)
