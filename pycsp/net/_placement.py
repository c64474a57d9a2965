"""Where a cluster's processes go: the hosts of an allocation and PyCSP 0.9.2's
placement hints.

Hosts come from the scheduler that made the allocation: Slurm's
``SLURM_JOB_NODELIST`` (its compressed form, ``node[01-03,07],gpu1``) or a PBS
nodefile (one line per core, so a host with 4 cores appears 4 times; 0.9.2's
``cluster_nodefile="$PBS_NODEFILE"``).  Placement keeps 0.9.2's meaning:

    blocked   the next line of the list, wrapping (fills a host's cores first)
    strided   the next line naming another host than the last one placed
    local     this host
    pin=X     line X of the list (modulo its length)

No network, no scheduler calls: a nodelist is expanded here as
``scontrol show hostnames`` would, so the code runs where Slurm's tools are not
on PATH (inside a container, or in tests).
"""
from __future__ import annotations

import os
import re
import threading

HINTS = ("blocked", "strided", "local")
LOCAL = "localhost"


class PlacementError(ValueError):
    """A host list that cannot be read, or a hint that does not exist."""


def expand_hostlist(nodelist: str) -> list[str]:
    """Slurm's compressed host list, expanded in order (``scontrol show
    hostnames``): ``"node[01-03,07],gpu1"`` -> node01 node02 node03 node07
    gpu1.  Ranges keep their zero padding; several bracket groups in one name
    multiply (``r[1-2]n[1-2]`` -> r1n1 r1n2 r2n1 r2n2)."""
    hosts: list[str] = []
    for name in _split_top_level(nodelist.strip()):
        if name:
            hosts.extend(_expand_name(name, nodelist))
    return hosts


def _split_top_level(text: str) -> list[str]:
    """Split at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise PlacementError(f"host list {text!r}: ']' without '['")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise PlacementError(f"host list {text!r}: '[' without ']'")
    parts.append(text[start:])
    return parts


def _expand_name(name: str, whole: str) -> list[str]:
    m = re.search(r"\[([^\[\]]*)\]", name)
    if not m:
        if re.search(r"[\[\]\s]", name):
            raise PlacementError(f"host list {whole!r}: bad host name {name!r}")
        return [name]
    head, tail = name[:m.start()], name[m.end():]
    expanded = []
    for item in m.group(1).split(","):
        r = re.fullmatch(r"(\d+)(?:-(\d+))?", item.strip())
        if not r:
            raise PlacementError(f"host list {whole!r}: bad range {item!r} in {name!r}")
        low, high = r.group(1), r.group(2) if r.group(2) is not None else r.group(1)
        if int(high) < int(low):
            raise PlacementError(f"host list {whole!r}: range {item!r} runs backwards")
        width = len(low) if low.startswith("0") else 0
        for n in range(int(low), int(high) + 1):
            for rest in _expand_name(tail, whole) if tail else [""]:
                expanded.append(f"{head}{n:0{width}d}{rest}")
    return expanded


def read_nodefile(spec: str) -> list[str]:
    """The hosts of a nodefile, one per non-empty line (``#`` starts a
    comment).  ``spec`` is a path, or ``$NAME`` for the path in environment
    variable NAME (0.9.2's default ``$PBS_NODEFILE``)."""
    path = spec
    if spec.startswith("$"):
        path = os.environ.get(spec[1:], "")
        if not path:
            raise PlacementError(
                f"cluster_nodefile={spec!r}: environment variable {spec[1:]} is not set "
                f"(not inside a PBS job?); name a nodefile, or run inside an allocation")
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise PlacementError(f"cluster_nodefile={spec!r}: cannot read {path!r}: "
                             f"{e.strerror}") from None
    hosts = [line.split("#", 1)[0].strip() for line in lines]
    hosts = [h for h in hosts if h]
    if not hosts:
        raise PlacementError(f"cluster_nodefile={spec!r}: {path!r} names no host")
    return hosts


def allocation_hosts(nodefile: str | None = "$PBS_NODEFILE") -> tuple[str, list[str]]:
    """("slurm", hosts) inside a Slurm allocation (one entry per task slot when
    Slurm says how many, else one per node), else ("nodefile", hosts) from
    `nodefile`."""
    nodelist = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST")
    if nodelist:
        nodes = expand_hostlist(nodelist)
        per_node = _slurm_tasks_per_node(os.environ.get("SLURM_TASKS_PER_NODE", ""), len(nodes))
        return "slurm", [n for n, k in zip(nodes, per_node) for _ in range(k)]
    if nodefile is None:
        raise PlacementError("not inside a Slurm allocation, and no nodefile named")
    return "nodefile", read_nodefile(nodefile)


def _slurm_tasks_per_node(spec: str, count: int) -> list[int]:
    """SLURM_TASKS_PER_NODE ("2(x3),1") as one count per node; 1 each if unset."""
    if not spec:
        return [1] * count
    counts: list[int] = []
    for part in spec.split(","):
        m = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if not m:
            return [1] * count
        counts.extend([int(m.group(1))] * int(m.group(2) or 1))
    return counts if len(counts) == count else [1] * count


class Placement:
    """One host list and where the next process goes (thread-safe)."""

    def __init__(self, hosts: list[str]) -> None:
        if not hosts:
            raise PlacementError("no hosts to place processes on")
        self.hosts = list(hosts)
        self._next = 0
        self._lock = threading.Lock()

    def pinned(self, index: int) -> str:
        """Line `index` of the list, wrapping (0.9.2's cluster_pin)."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise PlacementError(f"cluster_pin must be an int, not {type(index).__name__}")
        return self.hosts[index % len(self.hosts)]

    def next(self, hint: str = "blocked") -> str:
        if hint == "local":
            return LOCAL
        if hint not in HINTS:
            raise PlacementError(f"cluster_hint={hint!r}: use one of {', '.join(HINTS)}")
        with self._lock:
            if hint == "strided" and len(set(self.hosts)) > 1:
                last = self.hosts[self._next - 1]
                while self.hosts[self._next] == last:
                    self._next = (self._next + 1) % len(self.hosts)
            host = self.hosts[self._next]
            self._next = (self._next + 1) % len(self.hosts)
            return host
