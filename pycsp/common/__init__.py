"""Components and tools on top of the core API, as in PyCSP.

``pycsp.common.plugNplay``
    small processes to build networks from: Identity, Prefix, Successor,
    Delta2, Plus, Tail, Pairs, SkipProcess, Mux2.
``pycsp.common.toolkit``
    files and external commands as channels: which, file_r, file_w, runner,
    execute.

Import them after the backend, as PyCSP programs do::

    from pycsp.processes import *
    from pycsp.common.plugNplay import *

They run on whichever backend the program uses: a component runs as the kind
of process that started it, and a network inside one (Pairs, execute) runs on
that same backend.
"""
__all__ = ["plugNplay", "toolkit"]
