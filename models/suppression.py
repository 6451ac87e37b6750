"""Statistical disclosure control for the figures contract managers see (DESIGN §5 rule 2).

Counts of 1 to 4 are published as "<5". Zero is published as 0, as NHS England /
NHS Digital statistical publications do: small-number rules exist so that a
reader cannot single out the few people behind a figure, and a zero holds nobody
to single out (hiding zeros would also hide the gaps in flows that contract
managers are looking for). Zeros only disclose when a whole group shares an
attribute, which flow counts between organisations do not.

Primary suppression alone is not enough: if a row shows "<5", 12, 30 and a total
of 45, the "<5" is 3. So every suppressed entry needs a partner in each line
(row, column, or the totals row/column) that adds up to a published total.
Partners that are 5 or more are shown as "*" rather than "<5", because "<5"
would misstate them; the legend says "hidden so a small number cannot be worked
out". Partners are never zeros: a hidden zero protects nothing, since a reader
who knows the rule knows the hidden entries are non-zero.

Algorithm:
1. primary: every entry (cell or total) of 1-4 is suppressed;
2. secondary: while some line has exactly one suppressed entry, suppress the
   smallest published non-zero entry of that line (a line's total is one of its
   entries, so a hidden total whose cells all show is also protected);
3. audit: a reader can still pin a value down by combining lines and the known
   ranges ("<5" is 1-4, "*" is 5 or more), e.g. two "<5" in a row whose hidden
   part sums to 2 are both 1. Interval propagation over all lines finds such
   pinned "<5" entries; for each, the smallest published non-zero entry of its
   lines (or, failing that, of the lines linked to them) is suppressed too, and
   steps 2-3 repeat until stable. Interval reasoning is not full linear
   programming, so this is a strong heuristic rather than a proof; tests check
   small tables exhaustively.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "LEGEND",
    "SMALL",
    "SUPPRESSED",
    "THRESHOLD",
    "SuppressedTable",
    "is_suppressed",
    "suppress_series",
    "suppress_table",
]

THRESHOLD = 5
SMALL = "<5"  # a count of 1 to 4
SUPPRESSED = "*"  # a count of 5 or more, hidden so that a "<5" cannot be worked out
LEGEND = "<5: fewer than 5 (1 to 4). *: hidden so that a small number cannot be worked out."

Published = int | str
# One line of the table as a linear equation: sum(coef * value) == constant.
_Line = tuple[tuple[tuple[int, int], ...], int]

# Interval propagation tightens integer bounds monotonically, so it terminates;
# the cap only guards against slow convergence on pathological inputs.
_MAX_PROPAGATION_ROUNDS = 500


@dataclass(frozen=True)
class SuppressedTable:
    """A two-way table ready to publish; suppressed entries are SMALL or SUPPRESSED."""

    cells: dict[tuple[str, str], Published]
    row_totals: dict[str, Published]
    col_totals: dict[str, Published]
    grand_total: Published | None
    rows: list[str] = field(default_factory=list)
    cols: list[str] = field(default_factory=list)
    # False when even hiding everything leaves a small count deducible, e.g. a
    # grand total of 4 split over four non-zero cells (each must be 1): show
    # "too few to report" instead of the table.
    protected: bool = True


def is_suppressed(value: Published | None) -> bool:
    """True for an entry shown as SMALL or SUPPRESSED rather than a number."""
    return isinstance(value, str)


def _check_count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("counts must be integers")
    if value < 0:
        raise ValueError("counts cannot be negative")
    return value


def _smallest_published(values: list[int], hidden: list[bool], members: list[int]) -> int | None:
    candidates = [i for i in members if not hidden[i] and values[i] > 0]
    return min(candidates, key=lambda i: (values[i], i), default=None)


def _secondary(values: list[int], lines: list[_Line], hidden: list[bool]) -> bool:
    changed = False
    again = True
    while again:
        again = False
        for terms, _ in lines:
            members = [i for i, _ in terms]
            if sum(hidden[i] for i in members) == 1:
                pick = _smallest_published(values, hidden, members)
                if pick is not None:
                    hidden[pick] = True
                    again = changed = True
    return changed


def _bounds(values: list[int], lines: list[_Line], hidden: list[bool]) -> list[list[float]]:
    """What a reader can deduce about each entry: [low, high] after propagation."""
    bounds: list[list[float]] = []
    for v, h in zip(values, hidden, strict=True):
        if not h:
            bounds.append([v, v])
        elif v < THRESHOLD:
            bounds.append([1, THRESHOLD - 1])
        else:
            bounds.append([THRESHOLD, math.inf])
    for _ in range(_MAX_PROPAGATION_ROUNDS):
        tightened = False
        for terms, constant in lines:
            # coef * x_j = constant - (sum of the other terms): bound that sum by
            # the line's total range minus x_j's own share, counting infinities
            # apart so that inf - inf never arises.
            shares = [
                (c * bounds[i][0], c * bounds[i][1]) if c > 0 else (-bounds[i][1], -bounds[i][0])
                for i, c in terms
            ]
            low_inf = sum(1 for lo, _ in shares if lo == -math.inf)
            high_inf = sum(1 for _, hi in shares if hi == math.inf)
            low_sum = sum(lo for lo, _ in shares if lo != -math.inf)
            high_sum = sum(hi for _, hi in shares if hi != math.inf)
            for (j, coef), (own_lo, own_hi) in zip(terms, shares, strict=True):
                if own_lo == -math.inf:
                    others_lo = -math.inf if low_inf > 1 else low_sum
                else:
                    others_lo = -math.inf if low_inf else low_sum - own_lo
                if own_hi == math.inf:
                    others_hi = math.inf if high_inf > 1 else high_sum
                else:
                    others_hi = math.inf if high_inf else high_sum - own_hi
                new_lo, new_hi = constant - others_hi, constant - others_lo
                if coef < 0:
                    new_lo, new_hi = -new_hi, -new_lo
                if new_lo > bounds[j][0]:
                    bounds[j][0], tightened = new_lo, True
                if new_hi < bounds[j][1]:
                    bounds[j][1], tightened = new_hi, True
        if not tightened:
            break
    return bounds


def _unpin(values: list[int], lines: list[_Line], hidden: list[bool]) -> bool | None:
    """Hide one more entry to free a pinned "<5"; None if one cannot be freed."""
    bounds = _bounds(values, lines, hidden)
    members = [[i for i, _ in terms] for terms, _ in lines]
    stuck = False
    for j, (lo, hi) in enumerate(bounds):
        if not (hidden[j] and values[j] < THRESHOLD and lo == hi):
            continue
        # Look for a partner in the pinned entry's own lines first, then in lines
        # linked to those, and so on: the deduction ran along that chain.
        near = {k for k, m in enumerate(members) if j in m}
        seen: set[int] = set()
        while near:
            pool = [i for k in near for i in members[k]]
            pick = _smallest_published(values, hidden, pool)
            if pick is not None:
                hidden[pick] = True
                return True
            seen |= near
            linked = set(pool)
            near = {k for k, m in enumerate(members) if k not in seen and linked & set(m)}
        stuck = True
    return None if stuck else False


def _protect(values: list[int], lines: list[_Line]) -> tuple[list[bool], bool]:
    """Which entries to hide, and whether every "<5" is then safe from deduction."""
    hidden = [0 < v < THRESHOLD for v in values]
    while True:
        _secondary(values, lines, hidden)
        outcome = _unpin(values, lines, hidden)
        if not outcome:
            return hidden, outcome is not None


def _publish(value: int, hidden: bool) -> Published:
    if not hidden:
        return value
    return SMALL if value < THRESHOLD else SUPPRESSED


def suppress_table(
    cells: Mapping[tuple[str, str], int], row_totals: bool = True, col_totals: bool = True
) -> SuppressedTable:
    """Suppress a (row, column) -> count table and the totals published with it.

    Missing (row, column) pairs count as 0, so a GROUP BY result can be passed
    as is. The grand total is published whenever any totals are, and is None
    otherwise.
    """
    rows = list(dict.fromkeys(r for r, _ in cells))
    cols = list(dict.fromkeys(c for _, c in cells))
    full = {(r, c): _check_count(cells.get((r, c), 0)) for r in rows for c in cols}

    # Cells and totals are all "entries"; each line refers to entries by index.
    values: list[int] = []

    def entry(value: int) -> int:
        values.append(value)
        return len(values) - 1

    cell_ix = {rc: entry(v) for rc, v in full.items()}
    row_ix = {r: entry(sum(full[r, c] for c in cols)) for r in rows if row_totals}
    col_ix = {c: entry(sum(full[r, c] for r in rows)) for c in cols if col_totals}
    grand_ix = entry(sum(full.values())) if row_totals or col_totals else None

    lines: list[_Line] = []
    if row_totals:
        lines += [(tuple((cell_ix[r, c], 1) for c in cols) + ((row_ix[r], -1),), 0) for r in rows]
        lines.append((tuple((row_ix[r], 1) for r in rows) + ((grand_ix, -1),), 0))
    if col_totals:
        lines += [(tuple((cell_ix[r, c], 1) for r in rows) + ((col_ix[c], -1),), 0) for c in cols]
        lines.append((tuple((col_ix[c], 1) for c in cols) + ((grand_ix, -1),), 0))

    hidden, protected = _protect(values, lines)
    out = [_publish(v, h) for v, h in zip(values, hidden, strict=True)]
    return SuppressedTable(
        cells={rc: out[i] for rc, i in cell_ix.items()},
        row_totals={r: out[i] for r, i in row_ix.items()},
        col_totals={c: out[i] for c, i in col_ix.items()},
        grand_total=out[grand_ix] if grand_ix is not None else None,
        rows=rows,
        cols=cols,
        protected=protected,
    )


def suppress_series(
    counts: Mapping[str, int], total: int | None = None
) -> tuple[dict[str, Published], Published | None]:
    """Suppress a one-way breakdown and, if given, its published total.

    If `total` differs from the sum of `counts` (an unlisted "other", or people
    counted in several categories) the difference is treated as known to the
    reader, which is the cautious assumption. A total below 5 split into that
    many non-zero counts (4 = 1+1+1+1) stays deducible however much is hidden;
    callers should not show such a breakdown at all.
    """
    names = list(counts)
    values = [_check_count(counts[n]) for n in names]
    lines: list[_Line] = []
    if total is not None:
        values.append(_check_count(total))
        known_rest = total - sum(values[:-1])
        terms = tuple((i, 1) for i in range(len(names))) + ((len(names), -1),)
        lines.append((terms, -known_rest))
    hidden, _ = _protect(values, lines)
    out = [_publish(v, h) for v, h in zip(values, hidden, strict=True)]
    return dict(zip(names, out[: len(names)], strict=True)), (out[-1] if total is not None else None)
