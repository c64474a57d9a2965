"""pytest-benchmark suite over the kernels of pycsp/bench/kernels.py (the same code
that `python -m pycsp.bench` and benchmarks/run.py measure).

    cd /work/main && PYTHONPATH=. pytest benchmarks/ --benchmark-only
    PYTHONPATH=. pytest benchmarks/ --benchmark-only -k processes --benchmark-json out.json

Kept out of tests/: CI times nothing, and `pytest` from the repo root collects only
tests/ (pyproject.toml: testpaths = ["tests"]).  Each benchmark runs the kernel in
this process with a fixed amount of work: pytest-benchmark times the whole call
(process start-up included); the kernel's own figure (us per communication, us per
hop, GB/s) is stored in extra_info["figure"] with its unit.  Backends that are not
importable (greenlet missing, csp_ext not built) are skipped.
"""
import importlib

import pytest

from pycsp.bench import kernels as K

BACKENDS = ('threads', 'greenlets', 'processes')

pytestmark = pytest.mark.timeout(300)


def _csp(backend):
    try:
        importlib.import_module('pycsp.' + backend)
    except Exception as e:  # noqa: BLE001 - any import failure means "skip"
        pytest.skip('pycsp.%s: %s' % (backend, e))
    return K._Csp(K.BACKENDS[backend][0] + ':process')


def _numpy():
    return pytest.importorskip('numpy')


def _bench(benchmark, fn, unit, rounds=3):
    figs = []

    def call():
        figs.append(fn())

    benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=1)
    benchmark.extra_info['unit'] = unit
    benchmark.extra_info['figure'] = sorted(figs)[len(figs) // 2]


# ---- this project's backends ----------------------------------------------

@pytest.mark.parametrize('backend', BACKENDS)
def test_commstime(benchmark, backend):
    csp = _csp(backend)
    _bench(benchmark, lambda: K.csp_commstime(csp, 5000), 'us/comm')


@pytest.mark.parametrize('size', [2, 64, 256])
@pytest.mark.parametrize('backend', BACKENDS)
def test_ring(benchmark, backend, size):
    csp = _csp(backend)
    _bench(benchmark, lambda: K.csp_ring(csp, size, max(5000, 4 * size)), 'us/hop')


@pytest.mark.parametrize('tokens', [1, 16, 63])
@pytest.mark.parametrize('backend', BACKENDS)
def test_tokens(benchmark, backend, tokens):
    csp = _csp(backend)
    _bench(benchmark, lambda: K.csp_tokens(csp, 64, tokens, 64 * 63 * 4), 'us/hop')


@pytest.mark.parametrize('workers', [1, 2, 5])
@pytest.mark.parametrize('backend', BACKENDS)
def test_pi(benchmark, backend, workers):
    csp = _csp(backend)
    _bench(benchmark, lambda: K.csp_pi(csp, workers, 500_000), 's')


@pytest.mark.parametrize('workers', [1, 2])
@pytest.mark.parametrize('backend', BACKENDS)
def test_mandel_numpy(benchmark, backend, workers):
    _numpy()
    csp = _csp(backend)
    _bench(benchmark, lambda: K.csp_mandel(csp, workers, 320, 160, 64, kind='numpy'), 's')


@pytest.mark.parametrize('workers', [1, 2])
@pytest.mark.parametrize('backend', BACKENDS)
def test_mandel_c(benchmark, backend, workers):
    csp = _csp(backend)
    try:
        K.mandel_c_function()
    except Exception as e:  # noqa: BLE001 - no compiler
        pytest.skip(str(e))
    _bench(benchmark, lambda: K.csp_mandel(csp, workers, 640, 480, 256, kind='c'), 's')


@pytest.mark.parametrize('spec', ['bytes-1K', 'bytes-1M', 'numpy-1M', 'numpy-64M'])
@pytest.mark.parametrize('backend', BACKENDS)
def test_payload(benchmark, backend, spec):
    if spec.startswith('numpy'):
        _numpy()
    csp = _csp(backend)
    n = {'bytes-1K': 5000, 'bytes-1M': 200, 'numpy-1M': 200, 'numpy-64M': 8}[spec]
    _bench(benchmark, lambda: K.csp_payload(csp, spec, n), 'GB/s')


@pytest.mark.parametrize('producers', [2, 8])
@pytest.mark.parametrize('backend', BACKENDS)
def test_alt(benchmark, backend, producers):
    csp = _csp(backend)
    _bench(benchmark, lambda: K.csp_alt(csp, producers, 5000), 'us/msg')
    fig = benchmark.extra_info['figure']
    assert isinstance(fig, float) and fig > 0


# ---- peers ----------------------------------------------------------------

def test_peer_simplequeue_commstime(benchmark):
    _bench(benchmark, lambda: K.sq_commstime(5000), 'us/comm')


def test_peer_mp_pipe_commstime(benchmark):
    _bench(benchmark, lambda: K.mp_commstime(5000), 'us/comm')


@pytest.mark.parametrize('size', [2, 64])
def test_peer_mp_pipe_ring(benchmark, size):
    _bench(benchmark, lambda: K.mp_ring(size, 5000), 'us/hop')


@pytest.mark.parametrize('spec', ['bytes-1M', 'numpy-64M'])
@pytest.mark.parametrize('queue', [False, True], ids=['pipe', 'queue'])
def test_peer_mp_payload(benchmark, spec, queue):
    if spec.startswith('numpy'):
        _numpy()
    n = 4 if spec.endswith('64M') else 100
    _bench(benchmark, lambda: K.mp_payload(spec, n, queue=queue), 'GB/s')


@pytest.mark.parametrize('workers', [1, 2, 5])
def test_peer_mp_pool_pi(benchmark, workers):
    _bench(benchmark, lambda: K.mp_pool_pi(workers, 500_000), 's')


def test_peer_greenlet_switch(benchmark):
    pytest.importorskip('greenlet')
    _bench(benchmark, lambda: K.greenlet_switch(100_000), 'us/switch')
