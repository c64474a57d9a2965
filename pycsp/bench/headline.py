"""The headline table: the seed's own comparison, one short table.

Columns: our three backends.  Rows: Commstime on each, with the peer a user would
otherwise pick for that backend under it (queue.SimpleQueue + threads, asyncio,
multiprocessing.Pipe, PyCSP 0.9.2); Monte-Carlo Pi with 1 worker and its speed-up
with more; the largest payload between two processes beside multiprocessing.Pipe.
Every cell is a median over the interleaved rounds with its min-max.
"""
import statistics

from . import kernels as K
from .fmt import fmt, micro, ratio, with_range
from .measure import LABEL, OURS, PEER_OF, PYCSP092

# the peers shown under Commstime, in this order, with the name a user knows
COMMSTIME_PEERS = (('simplequeue', 'queue.SimpleQueue + threads'),
                   ('asyncio', 'asyncio.Queue (one thread)'),
                   ('mp-pipe', 'multiprocessing.Pipe'))
PAYLOAD_PEERS = (('mp-pipe', 'multiprocessing.Pipe'),
                 ('mp-queue', 'multiprocessing.Queue'))
LABEL_WIDTH = 31
CELL_WIDTH = 21


class Finder:
    """The jobs of a run by (backend, kernel)."""

    def __init__(self, jobs):
        self.jobs = {(j.backend, j.kernel): j for j in jobs}

    def get(self, backend, kernel):
        return self.jobs.get((backend, kernel))

    def median(self, backend, kernel, size):
        j = self.get(backend, kernel)
        return j.median(size) if j else None

    def cell(self, backend, kernel, size, unavailable):
        """The cell text of one figure: median (min-max), or why there is none."""
        if backend in unavailable:
            return 'not available'
        j = self.get(backend, kernel)
        if j is None:
            return 'not measured'
        if size in j.errors and j.median(size) is None:
            return 'failed'
        return with_range(j.median(size), j.spread(size))


def ratio_text(peer, ours, higher_is_better=False):
    if not peer or not ours:
        return '-'
    return fmt(ours / peer if higher_is_better else peer / ours) + 'x'


def speedups(job, workers):
    """Per round, time with the fewest workers / time with `workers`: (median,
    (min, max)) or (None, None)."""
    one = min(job.sizes)
    base, other = job.by_round.get(one, {}), job.by_round.get(workers, {})
    ratios = [base[r] / other[r] for r in base if other.get(r)]
    if not ratios:
        return None, None
    return statistics.median(ratios), (min(ratios), max(ratios))


def size_label(spec):
    """'numpy-64M' -> '64 MiB numpy array'."""
    kind, n = K.parse_payload(spec)
    for unit, name in ((1 << 30, 'GiB'), (1 << 20, 'MiB'), (1 << 10, 'KiB')):
        if n >= unit and n % unit == 0:
            size = '%d %s' % (n // unit, name)
            break
    else:
        size = '%d B' % n
    return '%s %s' % (size, 'numpy array' if kind == 'numpy' else 'bytes')


def commstime_rows(find, cols, unavailable):
    u = micro()
    rows = [('Commstime, %ss/communication' % u,
             {b: find.cell(b, 'commstime', None, unavailable) for b in cols}, '')]
    for peer, name in COMMSTIME_PEERS:
        b = PEER_OF[peer]
        if b in cols:
            rows.append(('  ' + name, {b: find.cell(peer, 'commstime', None, unavailable)},
                         ratio_text(find.median(peer, 'commstime', None),
                                    find.median(b, 'commstime', None))))
    old = {b: PYCSP092[b][0] for b in cols}
    reasons = {unavailable.get(name) for name in old.values()}
    if None not in reasons and len(reasons) == 1:
        rows.append(('  PyCSP 0.9.2', 'not available: ' + reasons.pop(), ''))
    elif old:
        ratios = [ratio_text(find.median(old[b], 'commstime', None),
                             find.median(b, 'commstime', None)) for b in cols]
        rows.append(('  PyCSP 0.9.2',
                     {b: find.cell(old[b], 'commstime', None, unavailable) for b in cols},
                     ' / '.join(ratios)))
    return rows


def pi_rows(find, cols, unavailable, pi_job):
    one = min(pi_job.sizes)
    rows = [('Monte-Carlo Pi, %d worker%s, s' % (one, 's' if one > 1 else ''),
             {b: find.cell(b, 'pi', one, unavailable) for b in cols}, '')]
    for w in [w for w in pi_job.sizes if w != one]:
        cells = {}
        for b in cols:
            j = find.get(b, 'pi')
            if b in unavailable or j is None:
                cells[b] = 'not available' if b in unavailable else 'not measured'
                continue
            m, spread = speedups(j, w)
            cells[b] = with_range(m, spread, ratio) if m else 'failed'
        rows.append(('  speed-up, %d workers' % w, cells, ''))
    return rows


def payload_rows(find, cols, unavailable, payload_job):
    big = max(payload_job.sizes, key=lambda s: K.parse_payload(s)[1])
    cells = {b: 'by reference' if b in ('threads', 'greenlets') and b not in unavailable
             else find.cell(b, 'payload', big, unavailable) for b in cols}
    rows = [('%s, GB/s' % size_label(big), cells, '')]
    for peer, name in PAYLOAD_PEERS:
        if find.get(peer, 'payload') is not None:
            rows.append(('  ' + name,
                         {'processes': find.cell(peer, 'payload', big, unavailable)},
                         ratio_text(find.median(peer, 'payload', big),
                                    find.median('processes', 'payload', big),
                                    higher_is_better=True)))
    return rows


def headline(jobs, unavailable, backends, rounds):
    """The headline table's lines: the rows of the kernels measured."""
    find = Finder(jobs)
    cols = [b for b in OURS if b in backends]
    ours = [j for j in jobs if j.backend in OURS]
    pi_job = next((j for j in ours if j.kernel == 'pi'), None)
    payload_job = next((j for j in ours if j.kernel == 'payload'), None)
    rows = []       # (label, {backend: text} or a text spanning the columns, ratio)
    if any(j.kernel == 'commstime' for j in jobs):
        rows += commstime_rows(find, cols, unavailable)
    if pi_job:
        rows += pi_rows(find, cols, unavailable, pi_job)
    if payload_job:
        rows += payload_rows(find, cols, unavailable, payload_job)

    def pad(text, width):        # at least two spaces between columns
        return text.ljust(width - 2) + '  '

    lines = ['Medians of %d interleaved round%s (min-max over the rounds), each '
             'figure from its own subprocess:' % (rounds, 's' if rounds > 1 else ''),
             '',
             ' ' * LABEL_WIDTH + ''.join(pad(LABEL[b], CELL_WIDTH) for b in cols)
             + 'pycsp faster by']
    for label, cells, faster_by in rows:
        line = pad(label, LABEL_WIDTH)
        if isinstance(cells, str):
            line += cells
        else:
            line += ''.join(pad(cells.get(b, ''), CELL_WIDTH) for b in cols) + faster_by
        lines.append(line.rstrip())
    lines += ['',
              '"pycsp faster by": the peer\'s time / ours (for GB/s ours / the peer\'s).']
    if pi_job:
        samples = K.work_for('pi', pi_job.work, pi_job.quick)
        lines += ['Pi: %s samples shared by the workers (pure Python), seconds for the '
                  'whole Parallel, start-up' % format(samples, ','),
                  'included; speed-up = time with 1 worker / time with W, round by round.']
    if payload_job:
        lines.append('threads and greenlets pass a reference to a message: no copy, so '
                     'no GB/s is shown for them.')
    for b in cols:
        if b in unavailable:
            lines.append('%s: not available: %s' % (LABEL[b], unavailable[b]))
    return lines


def failures(jobs):
    """'LABEL, KERNEL-SIZE: reason' for every figure that could not be measured."""
    out = []
    for j in jobs:
        for s, why in j.errors.items():
            name = j.kernel if s is None else '%s-%s' % (j.kernel, s)
            out.append('%s, %s: %s' % (j.label, name, why))
    return out
