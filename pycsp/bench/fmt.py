"""How the demo writes a figure: three significant digits, and its spread."""
import sys


def fmt(v):
    if v is None:
        return '-'
    if v < 100:
        v = float('%.3g' % v)       # 9.9996 -> 10.0, not '10.00'
    if v >= 100:
        return '%.0f' % v
    if v >= 10:
        return '%.1f' % v
    if v >= 1:
        return '%.2f' % v
    return '%.3g' % v


def ratio(v):
    """'1.95x': a ratio (speed-up), two decimals."""
    return '%.2fx' % v


def with_range(median, spread, form=fmt):
    """'1.73 (1.70-1.80)': the median and the min-max over the rounds; the median
    alone when there was one round."""
    if median is None:
        return '-'
    text = form(median)
    if spread is not None and spread[0] != spread[1]:
        text += ' (%s-%s)' % (form(spread[0]).rstrip('x'), form(spread[1]).rstrip('x'))
    return text


def with_percent(median, spread):
    """'1.73±4%': the median and half its min-max range, relative (compact, for the
    wide detailed tables)."""
    if median is None:
        return '-'
    if spread is None or not median or spread[0] == spread[1]:
        return fmt(median)
    return '%s±%.0f%%' % (fmt(median), 50.0 * (spread[1] - spread[0]) / median)


def micro():
    """'µ' where stdout can print it, else 'u'."""
    try:
        '\u00b5'.encode(sys.stdout.encoding or 'ascii')
    except (UnicodeEncodeError, LookupError):
        return 'u'
    return '\u00b5'
