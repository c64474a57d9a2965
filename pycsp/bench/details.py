"""The detailed tables of a run (--details, and always with --full): every kernel
measured, every implementation a column, ratios against the peers and the C floors,
the speed-ups, the largest Parallel.  Each figure is the median over the rounds with
half its min-max range, relative ("1.73±4%").
"""
from . import kernels as K
from .fmt import fmt, with_percent
from .measure import FLOOR_KERNELS, FLOORS, LABEL, OURS, PEER_OF

# the C floor's mode shown in the tables' columns (the sleeping wait, as ours)
FLOOR_MODE = 'futex'


def row_name(kernel, size):
    if size is None:
        return kernel
    if kernel in ('pi', 'mandel-c', 'mandel-numpy'):
        return '%s-%sw' % (kernel, size)
    return '%s-%s' % (kernel, size)


def collect(jobs):
    """({kernel: {size: {backend: median}}}, the same with (min, max) over the
    rounds)."""
    res, spread = {}, {}
    for j in jobs:
        k = 'commstime' if j.kernel == 'switch' else j.kernel
        for s in j.sizes:
            m = j.median(s)
            if m is not None:
                res.setdefault(k, {}).setdefault(s, {})[j.backend] = m
                spread.setdefault(k, {}).setdefault(s, {})[j.backend] = j.spread(s)
    return res, spread


def better(kernel, peer, ours):
    if peer is None or ours is None or not peer or not ours:
        return None
    return ours / peer if kernel in K.HIGHER_IS_BETTER else peer / ours


def with_floors(res):
    """A copy of res with the C floors' FLOOR_MODE figure (us per hand-off) in
    every row of the latency kernels, as a column beside the peers, except where
    that floor measured the kernel's own network (c-processes:MODE)."""
    hand = res.get('handoff', {}).get(FLOOR_MODE, {})
    out = {}
    for k, rows in res.items():
        out[k] = {s: dict(r) for s, r in rows.items()}
        if k in FLOOR_KERNELS:
            own = {b.split(':')[0] for r in rows.values() for b in r if ':' in b}
            for r in out[k].values():
                r.update((f, v) for f, v in hand.items() if f not in own)
    return out


def ring_growth(rows, big=256):
    """'ring-N / ring-2 per hop' for every column with both (N = `big` if measured,
    else the largest size), or None."""
    sizes = [s for s in rows if isinstance(s, int)]
    if 2 not in sizes or max(sizes) <= 2:
        return None
    n = big if big in sizes else max(sizes)
    cols = [b for b in list(OURS) + [b for b in LABEL if b not in OURS]
            if rows[2].get(b) and rows.get(n, {}).get(b)]
    if not cols:
        return None
    return 'ring-%d / ring-2 per hop: ' % n + ', '.join(
        '%s %.2fx' % (LABEL[b], rows[n][b] / rows[2][b]) for b in cols)


def table(res, spread):
    lines = ['Each figure: the median over the rounds, and half its min-max range '
             'relative to it ("1.73±4%").',
             'Ratios "PEER/our backend": how many times better ours is than PEER (PEER / '
             'ours for times, ours / PEER for GB/s); for the floors (raw greenlet switch, '
             'C hand-offs) it is ours / floor, how far above the floor ours is.',
             'C floors: "C procs futex|hybrid" (commstime, ring) = the same network of bare '
             'forked C processes, one shared word per channel,',
             '  sleeping on a futex, or with the library\'s policy (hybrid: yield-spin up '
             'to 50 us, then futex); "C threads futex",',
             '  "C 2 procs futex" = two pthreads / processes handing a counter back and '
             'forth (us per hand-off, the same in every row).']
    hand_spread = spread.get('handoff', {}).get(FLOOR_MODE, {})

    def cell(k, s, c, median):
        sp = spread.get(k, {}).get(s, {}).get(c)
        if sp is None and c in FLOORS:           # a hand-off floor's column
            sp = hand_spread.get(c)
        return with_percent(median, sp)

    res = with_floors(res)
    order = ['commstime', 'ring', 'tokens', 'alt', 'pi', 'mandel-numpy', 'mandel-c',
             'payload']
    for k in order:
        if k not in res:
            continue
        rows = res[k]
        impls = [b for b in OURS if any(b in r for r in rows.values())]
        peers = [b for b in LABEL if b not in OURS and any(b in r for r in rows.values())]
        # the floors last
        peers = [p for p in peers if p not in FLOORS] + [p for p in peers if p in FLOORS]
        cols = impls + peers
        rcols = ['%s/%s' % (p.replace('c-processes:', 'c-'), PEER_OF[p][:3])
                 for p in peers if PEER_OF[p] in impls]
        w = {c: max(12, len(LABEL[c]) + 1) for c in cols}
        lines.append('')
        lines.append('%-24s' % (k + ' (' + K.UNITS[k] + ')') +
                     ''.join(LABEL[c].rjust(w[c]) for c in cols) +
                     ''.join(r.rjust(max(10, len(r) + 1)) for r in rcols))
        keys = sorted(rows, key=lambda s: (s is not None, K.parse_payload(s)[::-1]
                                           if k == 'payload' and s else s or 0))
        if k == 'payload':
            keys = sorted(rows, key=lambda s: (s.split('-')[0], K.parse_payload(s)[1]))
        for s in keys:
            r = rows[s]
            line = '%-24s' % row_name(k, s) + ''.join(cell(k, s, c, r.get(c)).rjust(w[c])
                                                      for c in cols)
            for p, rc in zip([p for p in peers if PEER_OF[p] in impls], rcols):
                o = r.get(PEER_OF[p])
                if p in FLOORS:       # ours / floor (how far above the floor)
                    v = o / r[p] if r.get(p) and o else None
                else:
                    v = better(k, r.get(p), o)
                line += (('%.2fx' % v) if v is not None else '-').rjust(max(10, len(rc) + 1))
            lines.append(line)
        if k == 'ring':
            g = ring_growth(rows)
            if g:
                lines.append(g)
    lines += floor_table(res, spread)
    return lines


def floor_table(res, spread):
    """The C floors, every mode measured, each with the ratio of our commstime on
    the matching backend to it."""
    rows = res.get('handoff')
    if not rows:
        return []
    fl = [f for f in ('c-threads', 'c-processes') if any(f in r for r in rows.values())]
    ct = res.get('commstime', {}).get(None, {})
    rfl = [f for f in fl if ct.get(PEER_OF[f])]
    names = {'c-threads': 'C threads', 'c-processes': 'C processes'}
    rnames = ['commstime %s/C' % PEER_OF[f][:3] for f in rfl]
    lines = ['', 'C floor: two pthreads (C threads) or two forked processes (C processes) '
                 'pass a counter back and forth;',
             'us per hand-off, and our commstime (us/comm) on the matching backend / '
             'the floor.',
             '%-24s' % 'handoff (us/handoff)' +
             ''.join(names[f].rjust(13) for f in fl) +
             ''.join(r.rjust(max(10, len(r) + 1)) for r in rnames)]
    order = ['condvar', 'futex', 'hybrid', 'spin']
    for mode in sorted(rows, key=lambda m: (order.index(m) if m in order else 9, m)):
        r = rows[mode]
        sp = spread.get('handoff', {}).get(mode, {})
        line = '%-24s' % ('handoff-' + mode) + ''.join(
            with_percent(r.get(f), sp.get(f)).rjust(13) for f in fl)
        for f, rn in zip(rfl, rnames):
            o = ct.get(PEER_OF[f])
            v = o / r[f] if r.get(f) and o else None
            line += (('%.2fx' % v) if v is not None else '-').rjust(max(10, len(rn) + 1))
        lines.append(line)
    return lines


def speedups(res):
    out = {}
    for k in ('pi', 'mandel-numpy', 'mandel-c'):
        rows = res.get(k, {})
        if 1 not in rows:
            continue
        for b, t1 in rows[1].items():
            out.setdefault(k, {})[b] = {w: (t1 / rows[w][b]) if rows[w].get(b) else None
                                        for w in sorted(rows)}
    return out


def spawn_summary(jobs):
    out = {}
    for j in jobs:
        if j.kernel != 'spawn':
            continue
        ok = [s for s in j.sizes if j.median(s) is not None]
        out[j.backend] = {'largest': max(ok) if ok else None,
                          'seconds': j.median(max(ok)) if ok else None,
                          'tried': j.sizes,
                          'failed': {str(s): why for s, why in j.errors.items()}}
    return out


def details(jobs):
    """Every detailed table of a run, as lines."""
    res, spread = collect(jobs)
    lines = table(res, spread)
    for k, d in speedups(res).items():
        ws = sorted({w for v in d.values() for w in v})
        lines.append('')
        lines.append('%s speed-up T(1 worker)/T(W workers), from the medians:' % k)
        lines.append('%-24s' % '' + ''.join(('W=%d' % w).rjust(8) for w in ws))
        for b, v in d.items():
            lines.append('%-24s' % LABEL[b] + ''.join(
                (('%.2fx' % v[w]) if v.get(w) else '-').rjust(8) for w in ws))
    spawn = spawn_summary(jobs)
    if spawn:
        lines.append('')
        lines.append('Largest Parallel tried (N processes pass one token around a ring; '
                     'first round only):')
        for b, d in spawn.items():
            lines.append('  %-18s N = %-9s %s s  (tried %s)%s' % (
                LABEL[b], d['largest'], fmt(d['seconds']),
                ', '.join(map(str, d['tried'])),
                ''.join('; N = %s %s' % kv for kv in d['failed'].items())))
    return lines
