"""Property tests against small sequential models (issue 6, item 4).

1. Random networks of writers, readers and alternations (input and output
   guards, every select spelling) over rendezvous and buffered channels.  The
   model is what a sequential run gives: every message written is delivered
   exactly once, each reader sees each writer's messages on a channel in the
   order written, and once every writer has retired every channel is retired
   with nothing left in it.

2. One buffered channel driven from the main program by a random sequence of
   operations (writes, reads, selects with skip, retire and poison of its
   ends), checked step by step against a deque.
"""
import collections
import gc
import importlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from conftest import by_backend
from net_backend import STATISTICS_ARE_THE_HOMES

SELECTS = ["Alternation.select", "Alternation.execute", "AltSelect", "PriSelect", "FairSelect"]


def _settings(backend, default=25, processes=8):
    return settings(
        max_examples=by_backend(backend, default=default, processes=processes),
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --------------------------------------------------------------------------- networks


@st.composite
def networks(draw, all_alt=False):
    """A network: channels (buffer sizes) and processes.

    Process kinds: ``writer`` (writes its script in order), ``reader`` (reads one
    channel until it is retired) and ``alt`` (one select over input guards for
    all its live inputs and output guards for the next message of each output
    channel).  Inputs of a process come before its outputs in channel order, so
    the network is acyclic and always ends.
    """
    nch = draw(st.integers(1, 4) if not all_alt else st.integers(2, 4))
    buffers = draw(st.lists(st.sampled_from([0, 0, 1, 2, 3]), min_size=nch, max_size=nch))
    kinds = ["alt"] if all_alt else ["writer", "reader", "alt"]
    procs = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(kinds))
        if kind == "writer":
            script = draw(st.lists(st.integers(0, nch - 1), max_size=8))
            procs.append({"kind": "writer", "ins": [], "outs": sorted(set(script)),
                          "script": script})
        elif kind == "reader":
            procs.append({"kind": "reader", "ins": [draw(st.integers(0, nch - 1))], "outs": [],
                          "script": []})
        else:
            # Inputs from channels below the pivot, outputs to channels from it on.
            pivot = draw(st.integers(0, nch))
            ins = sorted(draw(st.sets(st.integers(0, pivot - 1), min_size=1, max_size=3))
                         if pivot else [])
            outs_range = list(range(pivot, nch))
            script = (draw(st.lists(st.sampled_from(outs_range), max_size=8))
                      if outs_range else [])
            procs.append({"kind": "alt", "ins": ins, "outs": sorted(set(script)),
                          "script": script, "select": draw(st.sampled_from(SELECTS)),
                          "rotate": draw(st.integers(0, 7))})
    # Every channel needs a reader and a writer (that retires), or it never ends.
    for c in range(nch):
        if not any(c in p["ins"] for p in procs):
            if all_alt:
                procs.append({"kind": "alt", "ins": [c], "outs": [], "script": [],
                              "select": draw(st.sampled_from(SELECTS)), "rotate": 0})
            else:
                procs.append({"kind": "reader", "ins": [c], "outs": [], "script": []})
        if not any(c in p["outs"] for p in procs):
            script = [c] * draw(st.integers(0, 3))
            if all_alt:
                procs.append({"kind": "alt", "ins": [], "outs": [c], "script": script,
                              "select": draw(st.sampled_from(SELECTS)), "rotate": 0})
            else:
                procs.append({"kind": "writer", "ins": [], "outs": [c], "script": script})
    return {"buffers": buffers, "procs": procs}


def model(net):
    """The sequential model: what each channel must deliver, and in what order
    for each writer (messages are (writer index, channel, sequence number))."""
    deliver = collections.defaultdict(collections.Counter)
    order = collections.defaultdict(list)
    for pid, p in enumerate(net["procs"]):
        for seq, c in enumerate(p["script"]):
            msg = (pid, c, seq)
            deliver[c][msg] += 1
            order[(pid, c)].append(seq)
    return deliver, order


def _writer(csp, pid, outs, script):
    for seq, c in enumerate(script):
        outs[c]((pid, c, seq))
    csp.retire(*outs.values())
    return []


def _reader(csp, ins):
    (c, cin), = ins.items()
    got = []
    while True:
        try:
            got.append((c, cin()))
        except csp.ChannelRetireException:
            cin.retire()
            return got


def _alt(csp, pid, ins, outs, script, how, rotate):
    pending = collections.defaultdict(collections.deque)
    for seq, c in enumerate(script):
        pending[c].append((pid, c, seq))
    live = sorted(ins)
    got = []
    retired_outs = False
    end_channel = {id(e): c for c, e in list(ins.items()) + list(outs.items())}
    step = 0
    while True:
        if not retired_outs and not any(pending.values()):
            csp.retire(*outs.values())
            retired_outs = True
        if not live and retired_outs:
            return got
        entries = [("in", c) for c in live] + [("out", c) for c in sorted(pending) if pending[c]]
        # Vary the priority order from one select to the next.
        k = (rotate + step) % len(entries)
        entries = entries[k:] + entries[:k]
        step += 1
        try:
            if how.startswith("Alternation"):
                guards = []
                for kind, c in entries:
                    if kind == "in":
                        guards.append({ins[c]: (lambda channel_input: None)}
                                      if how.endswith("execute") else (ins[c], None))
                    else:
                        guards.append((outs[c], pending[c][0],
                                       (lambda: None) if how.endswith("execute") else None))
                alt = csp.Alternation(guards)
                g, msg = alt.execute() if how.endswith("execute") else alt.select()
            else:
                guards = []
                for i, (kind, c) in enumerate(entries):
                    if kind == "in":
                        guards.append(ins[c] if i % 2 else csp.InputGuard(ins[c]))
                    else:
                        guards.append((outs[c], pending[c][0]) if i % 2
                                      else csp.OutputGuard(outs[c], pending[c][0]))
                g, msg = getattr(csp, how)(*guards)
        except csp.ChannelRetireException:
            # An input channel was retired by its last writer: find which ones,
            # taking what they still hold (nothing written is lost by retire).
            for c in list(live):
                try:
                    g, msg = csp.PriSelect(csp.InputGuard(ins[c]), csp.Skip())
                except csp.ChannelRetireException:
                    ins[c].retire()
                    live.remove(c)
                    continue
                if g is ins[c]:
                    got.append((c, msg))
            continue
        c = end_channel[id(g)]
        if c in ins and g is ins[c]:
            got.append((c, msg))
        else:
            assert msg is None
            pending[c].popleft()


def run_network(csp, backend, net):
    """Run ``net`` and check it against the model; in processes, also check that
    the arena is back where it was once the network and its channels are gone."""
    import csp_ext

    gc.collect()
    before = csp_ext.shm_stats() if backend == "processes" else None
    _run_and_check(csp, net)
    if backend == "processes":
        gc.collect()
        after = csp_ext.shm_stats()
        assert (after["blocks_in_use"], after["bytes_in_use"]) == (
            before["blocks_in_use"], before["bytes_in_use"]), (
            f"arena blocks/bytes in use: {before['blocks_in_use']}/{before['bytes_in_use']} "
            f"before the network, {after['blocks_in_use']}/{after['bytes_in_use']} after")


def _run_and_check(csp, net):
    chans = [csp.Channel(f"c{i}", buffer=b) for i, b in enumerate(net["buffers"])]
    procs = []
    for pid, p in enumerate(net["procs"]):
        ins = {c: chans[c].reader() for c in p["ins"]}
        outs = {c: chans[c].writer() for c in p["outs"]}
        if p["kind"] == "writer":
            procs.append(csp.Process(_writer, csp, pid, outs, p["script"]))
        elif p["kind"] == "reader":
            procs.append(csp.Process(_reader, csp, ins))
        else:
            procs.append(csp.Process(_alt, csp, pid, ins, outs, p["script"], p["select"],
                                     p["rotate"]))
    results = csp.Parallel(*procs)

    deliver, order = model(net)
    got = collections.defaultdict(collections.Counter)
    for pid, received in enumerate(results):
        seen = collections.defaultdict(list)
        for c, msg in received:
            assert msg[1] == c, f"message {msg} arrived on channel {c}"
            got[c][tuple(msg)] += 1
            seen[(msg[0], c)].append(msg[2])
        for (writer, c), seqs in seen.items():
            assert seqs == sorted(seqs), (
                f"process {pid} received writer {writer}'s messages on channel {c} out of "
                f"order: {seqs}")
    for c in range(len(chans)):
        missing = deliver[c] - got[c]
        extra = got[c] - deliver[c]
        assert not missing and not extra, (
            f"channel {c}: not delivered {sorted(missing.elements())}, delivered more than "
            f"written {sorted(extra.elements())}")
    # Every channel ended retired, with nothing left in it and nobody waiting.
    for c, ch in enumerate(chans):
        s = ch.statistics()
        assert s["writers_retired"] and s["readers_retired"], (c, s)
        assert s["buffered"] == 0 and s["blocked_readers"] == 0 and s["blocked_writers"] == 0, (c, s)


@pytest.mark.timeout(300)
@pytest.mark.local_only(STATISTICS_ARE_THE_HOMES)
def test_random_networks_match_the_model(csp, backend):
    @_settings(backend)
    @given(net=networks())
    def check(net):
        run_network(csp, backend, net)

    check()


@pytest.mark.timeout(300)
@pytest.mark.local_only(STATISTICS_ARE_THE_HOMES)
def test_alternations_facing_alternations_match_the_model(csp, backend):
    """Only alternations: input and output guards on both ends of every channel."""
    @_settings(backend)
    @given(net=networks(all_alt=True))
    def check(net):
        run_network(csp, backend, net)

    check()


# --------------------------------------------------------------------------- one channel, sequential


def _channel_machine(csp):
    class ChannelMachine(RuleBasedStateMachine):
        """A buffered channel used from one process (no operation ever blocks)
        against a deque model."""

        def __init__(self):
            super().__init__()
            self.cap = 3
            self.ch = csp.Channel("model", buffer=self.cap)
            self.readers = [self.ch.reader(), self.ch.reader()]
            self.writers = [self.ch.writer(), self.ch.writer()]
            self.retired_r = [False, False]
            self.retired_w = [False, False]
            self.buf = collections.deque()
            self.poisoned = False
            self.n = 0

        @property
        def readers_gone(self):
            return all(self.retired_r)

        @property
        def writers_gone(self):
            return all(self.retired_w)

        def expect_error(self, fn, exc):
            with pytest.raises(exc):
                fn()

        def refused(self, end_retired, channel_retired):
            """The exception(s) an operation must raise, or None if it may go on.
            A retired end on a poisoned channel: the API does not rank the two."""
            if self.poisoned:
                if end_retired:
                    return (csp.ChannelPoisonException, csp.ChannelRetireException)
                return csp.ChannelPoisonException
            if end_retired or channel_retired:
                return csp.ChannelRetireException
            return None

        @rule(w=st.integers(0, 1))
        def write(self, w):
            exc = self.refused(self.retired_w[w], self.readers_gone)
            if exc:
                return self.expect_error(lambda: self.writers[w](0), exc)
            if len(self.buf) == self.cap:
                return  # would block
            self.n += 1
            self.writers[w](self.n)
            self.buf.append(self.n)

        @rule(r=st.integers(0, 1))
        def read(self, r):
            exc = self.refused(self.retired_r[r], self.writers_gone and not self.buf)
            if exc:
                return self.expect_error(self.readers[r], exc)
            if not self.buf:
                return  # would block
            assert self.readers[r]() == self.buf.popleft()

        @rule(r=st.integers(0, 1), how=st.sampled_from(["AltSelect", "PriSelect", "FairSelect"]))
        def select_read_or_skip(self, r, how):
            sel = lambda: getattr(csp, how)(csp.InputGuard(self.readers[r]), csp.Skip())  # noqa: E731
            exc = self.refused(self.retired_r[r], self.writers_gone and not self.buf)
            if exc:
                return self.expect_error(sel, exc)
            g, msg = sel()
            if self.buf:
                assert g is self.readers[r] and msg == self.buf.popleft()
            else:
                assert isinstance(g, csp.SkipGuard) and msg is None

        @rule(w=st.integers(0, 1))
        def select_write_or_skip(self, w):
            self.n += 1
            sel = lambda: csp.Alternation([(self.writers[w], self.n, None),  # noqa: E731
                                           {csp.Skip(): None}]).select()
            exc = self.refused(self.retired_w[w], self.readers_gone)
            if exc:
                return self.expect_error(sel, exc)
            g, msg = sel()
            if len(self.buf) < self.cap:
                assert g is self.writers[w]
                self.buf.append(self.n)
            else:
                assert isinstance(g, csp.SkipGuard)

        @rule(w=st.integers(0, 1))
        def retire_writer(self, w):
            self.writers[w].retire()
            self.retired_w[w] = True

        @precondition(lambda self: not self.retired_r[0] or not self.retired_r[1])
        @rule(r=st.integers(0, 1))
        def retire_reader(self, r):
            self.readers[r].retire()
            self.retired_r[r] = True
            if self.readers_gone:
                # No reader will ever take them; nothing more is observable.
                self.buf.clear()

        @rule(which=st.sampled_from(["channel", "reader", "writer"]))
        def poison(self, which):
            if self.poisoned:
                return
            if which == "channel":
                self.ch.poison()
            elif which == "reader":
                csp.poison(self.readers[0])
            else:
                self.writers[1].poison()
            self.poisoned = True
            self.buf.clear()

        @invariant()
        def buffered_count_matches(self):
            s = self.ch.statistics()
            if not self.poisoned and not self.readers_gone:
                assert s["buffered"] == len(self.buf), (s, list(self.buf))
            if self.poisoned:
                assert s["poisoned"] and s["buffered"] == 0, s

    return ChannelMachine


@pytest.mark.timeout(300)
@pytest.mark.local_only(STATISTICS_ARE_THE_HOMES)
def test_buffered_channel_matches_deque_model(csp, backend):
    machine = _channel_machine(csp)
    machine.TestCase.settings = settings(
        max_examples=by_backend(backend, default=60, processes=40), stateful_step_count=40,
        deadline=None, database=None, print_blob=True)
    machine.TestCase().runTest()
