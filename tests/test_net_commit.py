"""The cross-host commit protocol (pycsp/net/_commit.py) over an in-memory
network that reorders, kills and partitions (issue #16; NET.md "Testing").

A ``World`` is N node agents and the messages in flight between them.  At
every step one action is chosen (by hypothesis, or by a test's own script):
deliver any message in flight (no order at all, not even per link: the code
must not need ZeroMQ's), tell one node the failure detector's news, fire a
timeout, crash a node (it stops; what reaches it is dropped) or cut it off (it
runs on alone and learns that the others are dead), poison a channel.  The
properties of models/net_commit.pml are checked after every step and at
quiescence (no action left).  Scenarios 1-7 are the model's; the others are
random.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pycsp.net import _commit as C

pytestmark = pytest.mark.timeout(120)

RD, WR = C.READ, C.WRITE


class Violation(AssertionError):
    """A property of the protocol does not hold."""


@dataclass
class Op:
    guards: list[tuple[str, str]]        # (channel name, READ/WRITE)
    timeout: bool = False                # a skip or timeout guard too


@dataclass
class Spec:
    nodes: int
    channels: list[tuple[str, int, int]]              # name, home node, buffer
    procs: list[tuple[int, list[Op]]]                 # node, operations in turn
    fault: tuple[str, int] | None = None              # ("crash"|"partition", node)
    poisons: list[tuple[str, int]] = field(default_factory=list)   # channel, from node
    expected: int | None = None                       # DONE operations, no fault
    retire_at_end: bool = False                       # a finished script retires its ends
    propagate: bool = False                           # poison/LOST poisons them, RETIRED retires


def token(pid: int, k: int, g: int) -> tuple:
    """The value guard g of operation k of process pid writes: names its write."""
    return ("v", pid, k, g)


class World:
    def __init__(self, spec: Spec, fifo: bool = False) -> None:
        self.spec = spec
        self.fifo = fifo                        # per-link order, as ZeroMQ and the model
        self.agents = [C.Agent(n) for n in range(spec.nodes)]
        self.procs = [C.ProcessId(node, pid) for pid, (node, _) in enumerate(spec.procs)]
        joins: dict[tuple[str, str], int] = {}
        for _, ops in spec.procs:
            for key in {g for op in ops for g in op.guards}:
                joins[key] = joins.get(key, 0) + 1
        self.chan = {name: self.agents[home].home(name, buf, max(1, joins.get((name, RD), 0)),
                                                 max(1, joins.get((name, WR), 0)))
                     for name, home, buf in spec.channels}
        self.inflight: list[tuple[int, int, object]] = []
        self.notices: list[tuple[int, int]] = []
        self.timers: set[tuple[C.ProcessId, int]] = set()
        self.events: list[tuple] = [("poison", name, n) for name, n in spec.poisons]
        if spec.fault is not None:
            self.events.append(("fault",) + spec.fault)
        self.not_before = {ev: 0 for ev in self.events}   # step from which it may happen
        self.crashed: set[int] = set()
        self.cut: set[int] = set()                     # partitioned (alive, alone)
        self.next_op = [0] * len(self.procs)
        self.outcomes: dict[tuple[C.ProcessId, int], C.Outcome] = {}
        self.delivered: dict[tuple, tuple] = {}        # token -> (reader, epoch, channel)
        self.reader_of: dict[tuple, C.ProcessId] = {}  # token -> reader a matcher FINISHed
        self.steps = 0
        self.trace: list[str] = []              # what happened, for a failure's report

    # -- helpers

    def connected(self, a: int, b: int) -> bool:
        if a == b:
            return a not in self.crashed
        return not ({a, b} & (self.crashed | self.cut))

    def op(self, proc: C.ProcessId, epoch: int) -> Op:
        return self.spec.procs[proc.pid][1][epoch - 1]

    def guards(self, proc: C.ProcessId, k: int) -> list[C.Guard]:
        return [C.Guard(self.chan[name], d, token(proc.pid, k, g) if d == WR else None)
                for g, (name, d) in enumerate(self.spec.procs[proc.pid][1][k].guards)]

    def writer_of(self, tok: tuple) -> tuple[C.ProcessId, int, int]:
        _, pid, k, g = tok
        return self.procs[pid], k + 1, g

    # -- running

    def begin(self) -> None:
        for p in self.procs:
            self._start(p)

    def _start(self, proc: C.ProcessId) -> None:
        k = self.next_op[proc.pid]
        ops = self.spec.procs[proc.pid][1]
        if k >= len(ops):
            if self.spec.retire_at_end:
                self._leave(proc, poison=False)
            return
        self.next_op[proc.pid] += 1
        agent = self.agents[proc.node]
        knew_dead = any(g.channel.home in agent.known_dead for g in self.guards(proc, k))
        effects = agent.start(proc, self.guards(proc, k))
        if knew_dead and not any(isinstance(e, C.Outcome) and e.result == C.LOST for e in effects):
            raise Violation(f"{proc} op {k + 1} started knowing a home dead, not LOST at once")
        if ops[k].timeout:
            self.timers.add((proc, k + 1))
        self._apply(proc.node, effects)

    def _leave(self, proc: C.ProcessId, poison: bool) -> None:
        """The process's body ended: its ends are retired or poisoned (API: propagation)."""
        agent = self.agents[proc.node]
        joined = {g for op in self.spec.procs[proc.pid][1] for g in op.guards}
        for name, d in sorted(joined):
            ch = self.chan[name]
            self._apply(proc.node, agent.poison(ch) if poison else agent.retire(ch, d))

    def _apply(self, node: int, effects: list) -> None:
        for e in effects:
            if isinstance(e, C.Send):
                if isinstance(e.message, C.Finish):
                    self._committed(node, e.message)
                if not self.connected(node, e.dest):
                    continue                       # across the cut, or to/from a crashed node
                self.inflight.append((node, e.dest, e.message))
            else:
                self._outcome(e)

    def _committed(self, node: int, msg: C.Finish) -> None:
        """A home FINISHes a party: a read's FINISH (and a write's into a
        buffer) is the commit, which a poisoned channel must not make."""
        h = self.agents[node].homes[msg.channel]
        if msg.direction == RD:
            self.reader_of[msg.value] = msg.proc
        if (msg.direction == RD or h.capacity > 0) and h.poisoned:
            raise Violation(f"{msg.channel.name} poisoned, and its home commits {msg}")

    def _outcome(self, o: C.Outcome) -> None:
        key = (o.proc, o.epoch)
        if key in self.outcomes:
            raise Violation(f"{o.proc} epoch {o.epoch} ended twice: {self.outcomes[key]}, {o}")
        self.outcomes[key] = o
        self.timers.discard(key)
        op = self.op(o.proc, o.epoch)
        self._check_cause(o, op)
        mine = {token(o.proc.pid, o.epoch - 1, g) for g, (_, d) in enumerate(op.guards) if d == WR}
        sent = [t for t in mine if t in self.delivered]
        if len(sent) > 1:
            raise Violation(f"{o.proc} epoch {o.epoch}: two of its writes were read: {sent}")
        if o.result == C.DONE:
            name, d = op.guards[o.guard]
            if d == RD:
                self._read(o, name)
            elif sent and sent != [token(o.proc.pid, o.epoch - 1, o.guard)]:
                raise Violation(f"{o} committed guard {o.guard} but {sent} was read")
        elif sent and o.result != C.LOST:
            raise Violation(f"{o}: its write {sent} was read")
        if o.result in (C.DONE, C.TIMED_OUT):
            self._start(o.proc)
        elif self.spec.propagate:
            self._leave(o.proc, poison=o.result != C.RETIRED)

    def _check_cause(self, o: C.Outcome, op: Op) -> None:
        """No operation ends LOST, POISONED, RETIRED or TIMED_OUT without cause."""
        homes = [self.agents[self.chan[name].home].homes[self.chan[name]] for name, _ in op.guards]
        if o.result == C.LOST:
            ok = any(h.channel.home in self.crashed | self.cut for h in homes) or o.proc.node in self.cut
        elif o.result == C.POISONED:
            ok = any(h.poisoned for h in homes)
        elif o.result == C.RETIRED:
            ok = any(h.readers_left <= 0 or h.writers_left <= 0 for h in homes)
        elif o.result == C.TIMED_OUT:
            ok = op.timeout
        else:
            ok = True
        if not ok:
            raise Violation(f"{o} without cause")

    def _read(self, o: C.Outcome, name: str) -> None:
        tok = o.value
        if tok in self.delivered:
            raise Violation(f"{tok} delivered twice: {self.delivered[tok]} and {o}")
        self.delivered[tok] = (o.proc, o.epoch, name)
        wproc, wepoch, g = self.writer_of(tok)
        if self.spec.procs[wproc.pid][1][wepoch - 1].guards[g] != (name, WR):
            raise Violation(f"{o} read {tok} on {name}, written on another channel")
        w = self.outcomes.get((wproc, wepoch))
        if w is not None and w.result != C.LOST and not (w.result == C.DONE and w.guard == g):
            raise Violation(f"{o} read {tok}, but its writer ended {w}")

    def actions(self) -> list[tuple]:
        if self.fifo:
            heads = {}
            for i, (src, dst, _) in enumerate(self.inflight):
                heads.setdefault((src, dst), i)
            acts: list[tuple] = [("deliver", i) for i in sorted(heads.values())]
        else:
            acts = [("deliver", i) for i in range(len(self.inflight))]
        acts += [("notice", i) for i in range(len(self.notices))]
        acts += [("timer", t) for t in sorted(self.timers, key=lambda t: (t[0], t[1]))
                 if t[0].node not in self.crashed]
        acts += [("event", i) for i, ev in enumerate(self.events) if self.steps >= self.not_before[ev]]
        return acts

    def do(self, act: tuple) -> None:
        self.steps += 1
        kind, arg = act
        self.trace.append(self._describe(act))
        if kind == "deliver":
            src, dst, msg = self.inflight.pop(arg)
            if dst in self.crashed:
                return                              # the network drops it
            self._apply(dst, self.agents[dst].receive(src, msg))
        elif kind == "notice":
            n, c = self.notices.pop(arg)
            if n in self.crashed:
                return
            agent = self.agents[n]
            self._apply(n, agent.node_dead(c))
            for rec in agent.records.values():
                if rec.status == C.WAITING and any(g.channel.home == c for g in rec.guards):
                    raise Violation(f"{rec.proc} still WAITING on a channel of dead node {c}")
                if rec.status == C.CLAIMED and rec.claimer.home == c:
                    raise Violation(f"{rec.proc} still CLAIMED by a matcher of dead node {c}")
        elif kind == "timer":
            self.timers.discard(arg)
            proc, epoch = arg
            self._apply(proc.node, self.agents[proc.node].timeout(proc, epoch))
        else:
            ev = self.events.pop(arg)
            if ev[0] == "poison":
                _, name, n = ev
                if n not in self.crashed:
                    self._apply(n, self.agents[n].poison(self.chan[name]))
            else:
                _, how, c = ev
                (self.crashed if how == "crash" else self.cut).add(c)
                others = [n for n in range(self.spec.nodes) if n != c]
                self.notices += [(n, c) for n in others]
                if how == "partition":
                    self.notices += [(c, n) for n in others]
        self.check_step()

    def _describe(self, act: tuple) -> str:
        kind, arg = act
        if kind == "deliver":
            src, dst, msg = self.inflight[arg]
            return f"{src}->{dst} {msg}"
        if kind == "notice":
            return "node %d learns node %d dead" % self.notices[arg]
        if kind == "timer":
            return f"timeout of {arg}"
        return f"event {self.events[arg]}"

    def run(self, choose, limit: int = 5000) -> None:
        try:
            self.begin()
            self.check_step()
            while True:
                acts = self.actions()
                if not acts:
                    break
                if self.steps >= limit:
                    raise Violation(f"no quiescence after {limit} steps (livelock?)")
                self.do(acts[choose(acts)])
            self.check_quiescence()
        except AssertionError as e:
            raise Violation(f"{e}\ntrace:\n  " + "\n  ".join(self.trace)) from e

    # -- properties

    def check_step(self) -> None:
        for agent in self.agents:
            for h in agent.homes.values():
                if len(h.buffer) > h.capacity:
                    raise Violation(f"{h.channel} holds {len(h.buffer)} > {h.capacity}")

    def check_quiescence(self) -> None:
        live = [p for p in self.procs if p.node not in self.crashed]
        for p in live:
            rec = self.agents[p.node].records.get(p)
            if rec is None:
                continue
            if rec.status == C.CLAIMED:
                raise Violation(f"{p} left CLAIMED by {rec.claimer}")
            if rec.status != C.WAITING:
                continue
            for g in rec.guards:
                home = g.channel.home
                if not self.connected(p.node, home):
                    raise Violation(f"{p} WAITING on {g.channel.name}, whose home is dead to it")
                o = self.agents[home].homes[g.channel].offers.get((p, g.direction))
                if o is None or o.epoch != rec.epoch:
                    raise Violation(f"{p} epoch {rec.epoch}: its offer on {g.channel.name} is lost")
        for agent in self.agents:
            if agent.node in self.crashed:
                continue
            for h in agent.homes.values():
                self._check_no_missed_match(h)
                for o in h.offers.values():
                    rec = self.agents[o.proc.node].records[o.proc]
                    if not (rec.status == C.WAITING and rec.epoch == o.epoch):
                        raise Violation(f"{h.channel.name} keeps a stale offer {o} ({rec.status})")
        for key, o in self.outcomes.items():
            op = self.op(o.proc, o.epoch)
            if o.result != C.DONE or op.guards[o.guard][1] != WR:
                continue
            tok = token(o.proc.pid, o.epoch - 1, o.guard)
            if tok in self.delivered:
                continue
            ch = self.chan[op.guards[o.guard][0]]
            home = self.agents[ch.home]
            if tok in home.homes[ch].buffer and ch.home not in self.crashed:
                continue
            if home.homes[ch].capacity > 0 and (ch.home in self.crashed or home.homes[ch].poisoned):
                continue                     # buffered, then the home died or poison dropped it
            r = self.reader_of.get(tok)
            if r is not None and (r.node in self.crashed | self.cut or ch.home in self.cut):
                continue                     # its reader died, or was cut off from the home
            raise Violation(f"{o}: its value {tok} reached no reader (reader {r})")
        for tok, (reader, epoch, name) in self.delivered.items():
            wproc, wepoch, g = self.writer_of(tok)
            w = self.outcomes.get((wproc, wepoch))
            if w is None and wproc.node not in self.crashed:
                raise Violation(f"{tok} read by {reader}, its writer never ended")
        if self.spec.expected is not None and self.spec.fault is None:
            done = sum(o.result == C.DONE for o in self.outcomes.values())
            if done != self.spec.expected:
                raise Violation(f"{done} operations finished, expected {self.spec.expected}")

    def _live(self, o: C.Offer, h: C.ChannelHome) -> bool:
        if not self.connected(o.proc.node, h.channel.home):
            return False
        rec = self.agents[o.proc.node].records.get(o.proc)
        return rec is not None and rec.status == C.WAITING and rec.epoch == o.epoch

    def _check_no_missed_match(self, h: C.ChannelHome) -> None:
        if h.matcher is not None:
            raise Violation(f"{h.channel}: a matcher still runs at quiescence")
        readers = [o for o in h.offers.values() if o.direction == RD and self._live(o, h)]
        writers = [o for o in h.offers.values() if o.direction == WR and self._live(o, h)]
        if h.capacity == 0:
            if any(r.proc != w.proc for r in readers for w in writers):
                raise Violation(f"{h.channel}: a reader and a writer left unmatched")
        elif (readers and h.buffer) or (writers and len(h.buffer) < h.capacity):
            raise Violation(f"{h.channel}: an offer left unserved by the buffer")


# ------------------------------------------------------------------ scenarios

def alt(*guards, timeout=False) -> Op:
    return Op(list(guards), timeout)


X3 = [("x0", 0, 0), ("x1", 1, 0), ("x2", 2, 0)]

MODEL_SCENARIOS = {
    # 1: two alternations in opposite directions over two channels homed apart.
    1: Spec(3, X3, [(0, [alt(("x0", RD), ("x1", WR))]), (1, [alt(("x0", WR), ("x1", RD))])],
            expected=2),
    # 2: a cycle of three alternations; exactly one pair commits.
    2: Spec(3, X3, [(1, [alt(("x0", RD), ("x1", WR))]), (2, [alt(("x0", WR), ("x2", RD))]),
                    (0, [alt(("x1", RD), ("x2", WR))])], expected=2),
    # 3: a reader alternating twice; late claims refused by epoch.
    3: Spec(3, [("x0", 1, 0), ("x1", 2, 0)],
            [(0, [alt(("x0", RD), ("x1", RD)), alt(("x0", RD), ("x1", RD))]),
             (1, [alt(("x0", WR))]), (2, [alt(("x1", WR))])], expected=4),
    # 4: two alternating writers, one alternating reader.
    4: Spec(3, X3, [(2, [alt(("x0", RD), ("x1", RD))]), (0, [alt(("x0", WR), ("x1", WR))]),
                    (1, [alt(("x0", WR), ("x1", WR))])], expected=2),
    # 5: the home of a rendezvous dies at any moment.
    5: Spec(3, [("x0", 2, 0)], [(0, [alt(("x0", RD))]), (1, [alt(("x0", WR))])],
            fault=("crash", 2)),
    # 6: scenario 1, the home of one channel dies.
    6: Spec(3, [("x0", 0, 0), ("x1", 2, 0)],
            [(0, [alt(("x0", RD), ("x1", WR))]), (1, [alt(("x0", WR), ("x1", RD))])],
            fault=("crash", 2)),
    # 7: a writer's node dies while a reader elsewhere chooses.
    7: Spec(3, [("x0", 1, 0), ("x1", 0, 0)],
            [(0, [alt(("x0", RD), ("x1", RD))]), (2, [alt(("x0", WR))]), (1, [alt(("x1", WR))])],
            fault=("crash", 2)),
}


def _hyp(n: int):
    return settings(max_examples=n, deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def run_with(data, spec: Spec, fifo: bool = False) -> World:
    world = World(spec, fifo)
    for ev in world.events:
        # Faults and poison at any step, not mostly at the first ones.
        world.not_before[ev] = data.draw(st.integers(0, 40))
    def choose(acts: list[tuple]) -> int:
        return data.draw(st.integers(0, len(acts) - 1)) if len(acts) > 1 else 0
    world.run(choose)
    return world


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scenario", sorted(MODEL_SCENARIOS), ids=lambda s: f"scenario{s}")
@_hyp(250)
@given(data=st.data())
def test_model_scenario(scenario, data):
    run_with(data, MODEL_SCENARIOS[scenario])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scenario", [5, 6, 7], ids=lambda s: f"scenario{s}")
@_hyp(250)
@given(data=st.data())
def test_model_scenario_partitioned(scenario, data):
    """The faulty node is cut off instead: it runs on, alone, and must be fenced."""
    spec = dataclasses.replace(MODEL_SCENARIOS[scenario], fault=("partition", 2))
    run_with(data, spec)


@st.composite
def specs(draw, faults=True) -> Spec:
    nodes = draw(st.integers(3, 4))
    nch = draw(st.integers(2, 4))
    channels = [(f"x{i}", draw(st.integers(0, nodes - 1)), draw(st.sampled_from([0, 0, 1, 2])))
                for i in range(nch)]
    names = [c[0] for c in channels]
    procs = []
    for _ in range(draw(st.integers(3, 6))):
        ops = []
        for _ in range(draw(st.integers(1, 2))):
            pairs = draw(st.lists(st.tuples(st.sampled_from(names), st.sampled_from([RD, WR])),
                                  min_size=1, max_size=3, unique=True))
            ops.append(Op(pairs, draw(st.booleans()) and draw(st.booleans())))
        procs.append((draw(st.integers(0, nodes - 1)), ops))
    fault = None
    if faults and draw(st.booleans()):
        fault = (draw(st.sampled_from(["crash", "partition"])), draw(st.integers(0, nodes - 1)))
    poisons = []
    if faults and draw(st.integers(0, 3)) == 0:
        poisons = [(draw(st.sampled_from(names)), draw(st.integers(0, nodes - 1)))]
    return Spec(nodes, channels, procs, fault, poisons,
                retire_at_end=draw(st.booleans()), propagate=draw(st.booleans()))


@pytest.mark.timeout(90)
@_hyp(1000)
@given(spec=specs(), data=st.data())
def test_random_networks(spec, data):
    run_with(data, spec)


@pytest.mark.timeout(60)
@_hyp(300)
@given(spec=specs(faults=False), data=st.data())
def test_random_networks_without_faults(spec, data):
    """No fault, poison or timeout: the matching alone; at quiescence nothing
    that can match is left waiting."""
    spec = dataclasses.replace(spec, procs=[(n, [Op(op.guards) for op in ops]) for n, ops in spec.procs])
    run_with(data, spec)


# ------------------------------------------------------------------ the model's findings

def scripted(world: World, *prefer):
    """A chooser: the first action whose description contains the first of
    ``prefer`` that any action's does, else the first action (deliveries in
    the order sent)."""
    def choose(acts):
        texts = [world._describe(a) for a in acts]
        for want in prefer:
            for i, t in enumerate(texts):
                if want(t):
                    return i
        return 0
    return choose


def dead_home_at_start(world: World) -> None:
    """p0 on node 0 reads x0 (homed on 1), then x1 (homed on 2); node 2 dies
    first and node 0 learns it before the second read starts."""
    world.run(scripted(world, lambda t: t.startswith("event"), lambda t: "learns" in t))


DEAD_HOME_SPEC = Spec(3, [("x0", 1, 0), ("x1", 2, 0)],
                      [(0, [alt(("x0", RD)), alt(("x1", RD))]), (1, [alt(("x0", WR))])],
                      fault=("crash", 2))


@pytest.mark.timeout(10)
def test_operation_started_knowing_its_home_dead_ends_lost_at_once():
    world = World(DEAD_HOME_SPEC)
    dead_home_at_start(world)
    p0 = world.procs[0]
    assert world.outcomes[(p0, 1)].result == C.DONE
    assert world.outcomes[(p0, 2)].result == C.LOST
    assert not any(isinstance(m, C.Offer) and m.channel.name == "x1" for _, _, m in world.inflight)


@pytest.mark.timeout(10)
def test_operation_started_knowing_its_home_dead_mutant_is_caught(monkeypatch):
    """The model's first finding, undone: the offer goes into the void."""
    monkeypatch.setattr(C.Agent, "_home_known_dead", lambda self, guards: False)
    with pytest.raises(Violation, match="not LOST at once"):
        dead_home_at_start(World(DEAD_HOME_SPEC))


def home_dies_after_finishing_the_reader(world: World) -> None:
    """Scenario 5: the home FINISHes the reader and dies; the reader's node
    learns it before the FINISH arrives (fenced: the reader ends LOST); then
    every message still in flight is delivered, before the other notices."""
    finish_sent = lambda t: any(isinstance(m, C.Finish) for _, _, m in world.inflight)
    def choose(acts):
        texts = [world._describe(a) for a in acts]
        if finish_sent(None) and world.events:
            return texts.index(next(t for t in texts if t.startswith("event")))
        if world.crashed:
            for want in ("node 0 learns", "->", "learns"):
                for i, t in enumerate(texts):
                    if want in t:
                        return i
        return next(i for i, t in enumerate(texts) if "->" in t)
    world.run(choose)


@pytest.mark.timeout(10)
def test_writer_is_not_finished_before_the_readers_ack():
    world = World(MODEL_SCENARIOS[5])
    home_dies_after_finishing_the_reader(world)
    reader, writer = world.procs
    assert world.outcomes[(reader, 1)].result == C.LOST
    assert world.outcomes[(writer, 1)].result == C.LOST


@pytest.mark.timeout(10)
def test_writer_finished_before_the_readers_ack_mutant_is_caught(monkeypatch):
    """The model's second finding (MUT_NO_ACK), undone: the writer is told
    DONE for a value no reader has."""
    monkeypatch.setattr(C.ChannelHome, "_writer_awaits_ack", lambda self, reader: False)
    with pytest.raises(Violation, match="reached no reader"):
        home_dies_after_finishing_the_reader(World(MODEL_SCENARIOS[5]))


# ------------------------------------------------------------------ the harness can fail

def _no_order(mp):
    init = C._Matcher.__init__
    def reader_first(self, kind, reader, writer):
        init(self, kind, reader, writer)
        self.order = [o for o in (reader, writer) if o is not None]
    mp.setattr(C._Matcher, "__init__", reader_first)


def _no_epoch(mp):
    claim = C.Agent._claim
    def any_epoch(self, rec, channel, epoch):
        if rec.status in C.FINAL or epoch == rec.epoch:
            return claim(self, rec, channel, epoch)
        return [dataclasses.replace(e, message=dataclasses.replace(e.message, epoch=epoch))
                if isinstance(e, C.Send) else e for e in claim(self, rec, channel, rec.epoch)]
    mp.setattr(C.Agent, "_claim", any_epoch)


def _fail_claimed(mp):
    claim = C.Agent._claim
    def fail(self, rec, channel, epoch):
        if rec.status == C.CLAIMED:
            return [C.Send(channel.home, C.ClaimFail(rec.proc, channel, epoch))]
        return claim(self, rec, channel, epoch)
    mp.setattr(C.Agent, "_claim", fail)


def _no_release(mp):
    answered = C.ChannelHome._answered
    def keep(self, ok):
        out = answered(self, ok)
        return out if ok else [e for e in out if not isinstance(getattr(e, "message", None), C.Release)]
    mp.setattr(C.ChannelHome, "_answered", keep)


def _no_over(mp):
    offer = C.ChannelHome.on_offer
    def forget(self, msg):
        self.over.pop(msg.proc, None)
        return offer(self, msg)
    mp.setattr(C.ChannelHome, "on_offer", forget)


def _claim_dead_party(mp):
    """The code's first version: a matcher claims its second party even if
    that party's node is known dead (the claim goes into the void)."""
    answered = C.ChannelHome._answered
    def forget(self, ok):
        dead = set(self.known_dead)
        self.known_dead.clear()
        try:
            return answered(self, ok)
        finally:
            self.known_dead |= dead
    mp.setattr(C.ChannelHome, "_answered", forget)


def _claim_overtaking_release_refused(mp):
    """The code's first version: the model's assertion that a record is not
    claimed twice by one channel's matchers (true only with per-link order)."""
    claim = C.Agent._claim
    def strict(self, rec, channel, epoch):
        if rec.status == C.CLAIMED and rec.claimer == channel and epoch == rec.epoch:
            raise C.ProtocolError(f"claim by {channel} of {rec}")
        return claim(self, rec, channel, epoch)
    mp.setattr(C.Agent, "_claim", strict)


def _commit_poisoned(mp):
    answered = C.ChannelHome._answered
    def blind(self, ok):                   # a rendezvous matcher does not look at poison
        if self.matcher.kind != "pair":
            return answered(self, ok)
        was, self.poisoned = self.poisoned, False
        try:
            return answered(self, ok)
        finally:
            self.poisoned = was
    mp.setattr(C.ChannelHome, "_answered", blind)


# The model's seeded mutations (models/net_commit.pml's header; the scenario
# its self-test catches each with), the model's first finding, and two of the
# code's own safeguards, each undone: the properties above must catch each.
MUTANTS = {
    "MUT_NO_ORDER": (_no_order, 1),
    "MUT_NO_EPOCH": (_no_epoch, 3),
    "MUT_FAIL_CLAIMED": (_fail_claimed, 2),
    "MUT_NO_RELEASE": (_no_release, 2),
    "MUT_NO_ACK": (lambda mp: mp.setattr(C.ChannelHome, "_writer_awaits_ack", lambda self, r: False), 5),
    "MUT_NO_FENCE": (lambda mp: mp.setattr(C.Agent, "_fenced", lambda self, src: False), 5),
    "dead home at start": (lambda mp: mp.setattr(C.Agent, "_home_known_dead", lambda self, g: False), None),
    "stale offers taken": (_no_over, None),
    "second claim to a dead node": (_claim_dead_party, 7),
    "claim overtaking release refused": (_claim_overtaking_release_refused, None),
    "commit after poison": (_commit_poisoned, None),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_each_mutant_is_caught(mutant, monkeypatch):
    """The model's scenario for it first (as its self-test), then random
    ones; no shrinking: finding a violation is the point."""
    patch, scenario = MUTANTS[mutant]
    patch(monkeypatch)

    def explore(strategy) -> bool:
        @settings(max_examples=1500, deadline=None, database=None, phases=[Phase.generate],
                  derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(spec=strategy, data=st.data())
        def run(spec, data):
            run_with(data, spec)
        try:
            run()
        except AssertionError:        # Violation, ProtocolError
            return True
        return False

    caught = ((scenario is not None and explore(st.just(MODEL_SCENARIOS[scenario])))
              or explore(specs()))
    assert caught, f"{mutant} survives the harness"


# ------------------------------------------------------------------ beyond the model: fixed schedules

def in_order(world: World):
    """Messages in the order sent, then notices, timers, events."""
    return lambda acts: 0


def results(world: World, pid: int) -> list[tuple]:
    p = world.procs[pid]
    return [(o.result, o.value) for (q, _), o in sorted(world.outcomes.items(), key=lambda kv: kv[0][1])
            if q == p]


@pytest.mark.timeout(10)
def test_buffered_channel_keeps_order_and_retire_loses_nothing():
    """Two writes into a buffer of 2 complete with no reader there; the reader
    then gets both, in order, and its third read ends RETIRED (every writer
    has retired)."""
    spec = Spec(3, [("x0", 1, 2)],
                [(0, [alt(("x0", WR)), alt(("x0", WR))]),
                 (2, [alt(("x0", RD))] * 3)], retire_at_end=True)
    world = World(spec)
    world.run(in_order(world))
    assert results(world, 0) == [(C.DONE, None), (C.DONE, None)]
    assert results(world, 1) == [(C.DONE, token(0, 0, 0)), (C.DONE, token(0, 1, 0)), (C.RETIRED, None)]


@pytest.mark.timeout(10)
def test_poison_at_the_home_reaches_waiting_and_later_parties():
    spec = Spec(3, [("x0", 1, 0), ("x1", 0, 0)],
                [(2, [alt(("x0", RD), ("x1", RD))]), (0, [alt(("x1", WR)), alt(("x0", WR))])],
                poisons=[("x0", 1)])
    world = World(spec)
    world.run(in_order(world))
    # The reader meets the first write, on x1; the writer's second operation,
    # on x0, then waits alone until the poison at x0's home ends it.
    assert results(world, 0) == [(C.DONE, token(1, 0, 0))]
    assert results(world, 1) == [(C.DONE, None), (C.POISONED, None)]


@pytest.mark.timeout(10)
def test_timeout_guard_commits_when_nothing_matches():
    spec = Spec(2, [("x0", 1, 0)], [(0, [alt(("x0", RD), timeout=True)])])
    world = World(spec)
    world.run(in_order(world))
    assert results(world, 0) == [(C.TIMED_OUT, None)]
    assert not world.agents[1].homes[world.chan["x0"]].offers      # withdrawn


@pytest.mark.timeout(60)
@pytest.mark.parametrize("safeguard", ["claim overtaking release refused", "stale offers taken"])
def test_with_per_link_order_the_models_assumption_holds(safeguard, monkeypatch):
    """With links in order (ZeroMQ's, the model's inboxes), the code never
    needs the two safeguards that reordering needs: the model's assertion
    (no claim by a channel's matcher of a record it holds) and its offers
    (no stale one left) hold without them."""
    MUTANTS[safeguard][0](monkeypatch)

    @settings(max_examples=400, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(spec=st.sampled_from([MODEL_SCENARIOS[k] for k in sorted(MODEL_SCENARIOS)]) | specs(),
           data=st.data())
    def explore(spec, data):
        run_with(data, spec, fifo=True)

    explore()
