"""What scripts/compare.sh and scripts/fanout.sh compute over repeated rounds
of tether-load runs: each row is a dict of figures (None when a run did not
give one); the helpers skip the missing ones."""


def fmt(x, spec):
    """`x` formatted with `spec`, or "-" when there is none."""
    return "-" if x is None else format(x, spec)


def mean(rows, key):
    """The mean of `key` over the rows that have it (None if none do)."""
    vals = [r[key] for r in rows if r[key] is not None]
    return sum(vals) / len(vals) if vals else None


def best(rows, key):
    """The least `key` among the rows (CPU per message, latency): the round
    least disturbed by other processes on a shared machine."""
    vals = [r[key] for r in rows if r[key] is not None]
    return min(vals) if vals else None


def ratio(a, b):
    """`a / b` as "1.23x", or "-" when either is missing."""
    return f"{a / b:.2f}x" if a is not None and b else "-"
