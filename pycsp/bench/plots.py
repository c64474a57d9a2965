"""The demo's PNG plots (matplotlib, Agg backend): latency against ring size, time
against tokens in flight, Monte-Carlo Pi time against workers, payload rate against
message size, and the Mandelbrot farms when measured.  Points are medians over the
rounds; the error bars span the min-max (each series shifted a little sideways so
that they do not hide each other)."""
import os

from . import kernels as K
from .measure import LABEL, OURS

INSTALL_HINT = 'pip install "pycsp[demo]"'

STYLE = {'threads': ('C0', '-'), 'greenlets': ('C1', '-'), 'processes': ('C2', '-'),
         'simplequeue': ('C0', ':'), 'pycsp092-threads': ('C0', '--'),
         'pycsp092-greenlets': ('C1', '--'), 'greenlet-switch': ('C1', ':'),
         'mp-pipe': ('C2', ':'), 'mp-pool': ('C2', ':'), 'mp-queue': ('C2', '-.'),
         'pycsp092-multiprocess': ('C2', '--'), 'asyncio': ('C3', ':'),
         'c-processes:futex': ('k', ':'), 'c-processes:hybrid': ('k', '--')}


def matplotlib_missing():
    """None if matplotlib imports, else why not."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        return str(e) or 'ImportError'
    return None


def _bytes_label(n):
    for unit, name in ((1 << 30, 'GiB'), (1 << 20, 'MiB'), (1 << 10, 'KiB')):
        if n >= unit:
            return '%g %s' % (n / unit, name)
    return '%d B' % n


def _series(jobs, kernel, xfun=lambda s: s, keep=lambda j: True):
    """[(label, style, xs, medians, lower errors, upper errors)] for `kernel`."""
    order = list(OURS) + [b for b in LABEL if b not in OURS]
    out = []
    for j in sorted((j for j in jobs if j.kernel == kernel and keep(j)),
                    key=lambda j: order.index(j.backend) if j.backend in order else 99):
        groups = {}
        for s in j.sizes:
            m = j.median(s)
            if m is None:
                continue
            group, x = xfun(s) if kernel == 'payload' else (None, xfun(s))
            lo, hi = j.spread(s)
            groups.setdefault(group, []).append((x, m, m - lo, hi - m))
        for group, pts in groups.items():
            pts.sort()
            label = j.label + (' (%s)' % group if group else '')
            color, line = STYLE.get(j.backend, ('k', '-'))
            if group == 'bytes':
                line = '-.' if line == '-' else line
            out.append((label, (color, line), [p[0] for p in pts], [p[1] for p in pts],
                        [p[2] for p in pts], [p[3] for p in pts]))
    return out


def save_plots(jobs, outdir, subtitle):
    """Write the PNGs of what `jobs` measured into outdir; return their paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    os.makedirs(outdir, exist_ok=True)
    made = []

    def one(kernel, fname, xlabel, ylabel, heading, logx=False, logy=False,
            xfun=lambda s: s, keep=lambda j: True, xticks=None, note=None,
            from_zero=False):
        series = _series(jobs, kernel, xfun, keep)
        if not series:
            return
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
        for i, (label, (color, line), xs, ys, lo, hi) in enumerate(series):
            # dodge: each series a little to the side, so the error bars of one x
            # do not hide each other
            shift = (i - (len(series) - 1) / 2) * 0.03
            xs = [x * 2 ** shift if logx else x + shift for x in xs]
            ax.errorbar(xs, ys, yerr=[lo, hi], color=color, linestyle=line, marker='o',
                        markersize=3, capsize=2, label=label)
        if logx:
            ax.set_xscale('log', base=2)
        if logy:
            ax.set_yscale('log')
        if from_zero:
            ax.set_ylim(bottom=0)
        if xticks is not None:
            ticks = sorted({x for s in series for x in s[2]})
            ax.set_xticks(ticks)
            ax.xaxis.set_major_formatter(FuncFormatter(xticks))
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, pos: ''))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(heading + '\n' + subtitle, fontsize=9)
        ax.grid(True, which='both', alpha=0.3)
        ax.legend(fontsize=7)
        if note:
            fig.text(0.01, 0.01, note, fontsize=7, color='0.3')
        fig.tight_layout(rect=(0, 0.03 if note else 0, 1, 1))
        path = os.path.join(outdir, fname)
        fig.savefig(path)
        plt.close(fig)
        made.append(path)

    def integer(x, pos):
        return '%d' % x

    one('ring', 'ring.png', 'processes in the ring', 'µs per hop (log scale)',
        'Latency against ring size: one token in a ring of N processes',
        logx=True, logy=True, xticks=integer)
    one('tokens', 'tokens.png', 'tokens in flight in a ring of 64 processes',
        'µs per token hop (log scale)', 'Time against tokens in flight',
        logx=True, logy=True, xticks=integer)
    one('pi', 'pi.png', 'workers', 'seconds (whole Parallel, start-up included)',
        'Monte-Carlo Pi (pure Python) time against workers', xticks=integer,
        from_zero=True)
    one('payload', 'payload.png', 'message size (log scale)', 'GB/s at the reader (log scale)',
        'Payload: one writer process sends messages to one reader process',
        logx=True, logy=True, xfun=K.parse_payload,
        keep=lambda j: j.backend not in ('threads', 'greenlets'),
        xticks=lambda x, pos: _bytes_label(x),
        note='threads and greenlets pass a reference (no copy): not shown')
    one('mandel-numpy', 'mandel-numpy.png', 'workers', 'seconds',
        'Mandelbrot farm, workers use numpy', xticks=integer, from_zero=True)
    one('mandel-c', 'mandel-c.png', 'workers', 'seconds',
        'Mandelbrot farm, workers call a C kernel (GIL released)', xticks=integer,
        from_zero=True)
    return made
