"""Wrong uses of pycsp that a type checker must reject.

tests/test_typing.py checks this file with ``mypy --strict --warn-unused-ignores``:
each ``# type: ignore[code]`` below must be needed, so that if the types
degraded (to Any, say), mypy would report the ignore as unused and the test fail.
It is never run.
"""
from __future__ import annotations

import pycsp.processes
import pycsp.threads as csp
from pycsp.common.plugNplay import Successor

numbers = csp.Channel[int]()
texts = csp.Channel[str]()


@csp.process
def produce(cout: csp.ChannelEndWrite[int]) -> None:
    cout(1)


def wrong() -> None:
    (-numbers)("one")  # type: ignore[arg-type]
    word: str = (+numbers)()  # type: ignore[assignment]
    produce(-texts)  # type: ignore[arg-type]
    produce(+numbers)  # type: ignore[arg-type]
    produce(-numbers, 2)  # type: ignore[call-arg]
    csp.Parallel(produce)  # type: ignore[arg-type]
    csp.AltSelect(-numbers)  # type: ignore[arg-type]
    csp.Alternation([{(-numbers): None}])  # type: ignore[dict-item]
    csp.poison(3)  # type: ignore[arg-type]
    csp.Timeout("1")  # type: ignore[arg-type]
    csp.Channel(buffer="2")  # type: ignore[arg-type]
    Successor(+texts, -texts)  # type: ignore[arg-type]
    pycsp.processes.set_start_method(1)  # type: ignore[arg-type]
    shared: pycsp.processes.Channel[int] = numbers  # type: ignore[assignment]
    print(word, shared)
