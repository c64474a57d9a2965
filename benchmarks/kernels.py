#!/usr/bin/env python3
"""The benchmark kernels live in pycsp/bench/kernels.py (one copy); this runs them.

    python benchmarks/kernels.py --backend processes --kernel commstime
    PYCSP_HOST=127.0.0.1 /work/peers/pycsp092/bin/python benchmarks/kernels.py \\
        --backend pycsp092-multiprocess --kernel ring --sizes 2,4,8

The module is loaded by its path (not as pycsp.bench.kernels), so that PyCSP 0.9.2's
interpreter, whose own package is also called "pycsp", can run the same source: the
module imports nothing from pycsp until a backend is chosen.  `import kernels` from
benchmarks/ gives the same module object.
"""
import importlib.util
import os
import sys

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    'pycsp', 'bench', 'kernels.py')


def load():
    name = 'pycsp_bench_kernels'
    mod = sys.modules.get(name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(name, PATH)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return mod


if __name__ == '__main__':
    load().cli()
else:
    sys.modules[__name__] = load()
