"""Small-number suppression for the figures contract managers see (DESIGN §5 rule 2),
across every figure of one flows response.

Counts of 1 to 4 are published as "<5". Zero is published as 0, as NHS England / NHS
Digital statistical publications do: small-number rules exist so that a reader cannot
single out the few people behind a figure, and a zero holds nobody to single out (hiding
zeros would also hide the gaps in flows that contract managers are looking for).

Primary suppression alone is not enough: if a row shows "<5", 12, 30 and a total of 45,
the "<5" is 3. And a flows response publishes many figures tied together beyond one
table: an offer's "sent" is the flow matrix's column total *and* the top of its funnel,
"accepted" is both a funnel stage and the sum of four outcomes, the equality tables share
the grand total, and so on. Two tables protected separately could publish a figure in one
that the other hid, or leave a difference between them that gives a hidden count away.

So every figure is an entry in one register and every arithmetic relation a reader could
use is a *line* (``sum(coef * entry) == 0``):

1. primary: every entry of 1-4 is hidden as "<5"; zero is published;
2. secondary: while a line has exactly one hidden entry, hide the smallest published
   non-zero entry of that line ("*" if it is 5 or more, since "<5" would misstate it;
   never a zero, which protects nothing);
3. audit: interval propagation over all lines ("<5" is 1-4, "*" is 5 or more, the rest
   are known) finds any "<5" a reader could still pin to one value; one more partner of
   it is hidden and steps 2-3 repeat until stable. Interval reasoning is not full linear
   programming, so this is a strong heuristic rather than a proof; tests check small
   tables by brute force and the whole flows response with a solver.

Derived figures follow the entries: a percentage is published only when its numerator
and denominator both are, a change against the previous period only when both periods'
values are, and a median or 90th percentile only when the count it describes is
published and at least 5.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable

THRESHOLD = 5
SMALL = "<5"  # a count of 1 to 4
SUPPRESSED = "*"  # a count of 5 or more, hidden so that a "<5" cannot be worked out
LEGEND = "<5: fewer than 5 (1 to 4). *: hidden so that a small number cannot be worked out."

__all__ = ["LEGEND", "SMALL", "SUPPRESSED", "THRESHOLD", "Register", "published"]

Published = int | str
_MAX_ROUNDS = 200


class Register:
    """Entries (named counts) and the lines that tie them, protected together."""

    def __init__(self, suppress: bool = True) -> None:
        self.suppress = suppress  # False only for tests that check the raw counts
        self._index: dict[Hashable, int] = {}
        self.values: list[int] = []
        self.lines: list[tuple[tuple[int, int], ...]] = []
        self._hidden: list[bool] | None = None

    def add(self, key: Hashable, value: int) -> Hashable:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key!r}: counts must be non-negative integers")
        if key in self._index:
            if self.values[self._index[key]] != value:
                raise ValueError(f"{key!r} registered twice with different values")
            return key
        self._index[key] = len(self.values)
        self.values.append(value)
        self._hidden = None
        return key

    def __contains__(self, key: Hashable) -> bool:
        return key in self._index

    def value(self, key: Hashable) -> int:
        return self.values[self._index[key]]

    def total(self, total: Hashable, parts: Iterable[Hashable]) -> None:
        """Record that `total` is the sum of `parts` (every key must be added first)."""
        self.equal([total], parts)

    def equal(self, left: Iterable[Hashable], right: Iterable[Hashable]) -> None:
        """Record that the entries in `left` add up to the same as those in `right`."""
        left, right = list(left), list(right)
        terms = [(self._index[k], -1) for k in left] + [(self._index[k], 1) for k in right]
        check = sum(c * self.values[i] for i, c in terms)
        if check != 0:
            raise ValueError(f"line {list(left)!r} does not add up ({check:+d})")
        merged: dict[int, int] = {}
        for i, c in terms:
            merged[i] = merged.get(i, 0) + c
        line = tuple((i, c) for i, c in merged.items() if c)
        if line:
            self.lines.append(line)
            self._hidden = None

    # -- protection -----------------------------------------------------------------

    def _smallest_published(self, hidden: list[bool], members: Iterable[int]) -> int | None:
        candidates = [i for i in members if not hidden[i] and self.values[i] > 0]
        return min(candidates, key=lambda i: (self.values[i], i), default=None)

    def _secondary(self, hidden: list[bool], by_entry: list[list[int]]) -> None:
        pending = list(range(len(self.lines)))
        while pending:
            line_no = pending.pop()
            members = [i for i, _ in self.lines[line_no]]
            if sum(hidden[i] for i in members) != 1:
                continue
            pick = self._smallest_published(hidden, members)
            if pick is not None:
                hidden[pick] = True
                pending.extend(by_entry[pick])

    def _bounds(self, hidden: list[bool]) -> list[list[float]]:
        """What a reader can deduce about each entry: [low, high] after propagation."""
        bounds = []
        for v, h in zip(self.values, hidden, strict=True):
            if not h:
                bounds.append([v, v])
            elif v < THRESHOLD:
                bounds.append([1, THRESHOLD - 1])
            else:
                bounds.append([THRESHOLD, math.inf])
        # Only lines with a hidden entry can tighten anything.
        lines = [ln for ln in self.lines if any(hidden[i] for i, _ in ln)]
        for _ in range(_MAX_ROUNDS):
            tightened = False
            for terms in lines:
                # Sum of lows and highs of c*x over the line, with infinite parts counted.
                low_sum = high_sum = 0.0
                low_inf = high_inf = 0
                parts = []
                for i, c in terms:
                    lo, hi = bounds[i]
                    p_lo, p_hi = (c * lo, c * hi) if c > 0 else (c * hi, c * lo)
                    parts.append((p_lo, p_hi))
                    if math.isinf(p_lo):
                        low_inf += 1
                    else:
                        low_sum += p_lo
                    if math.isinf(p_hi):
                        high_inf += 1
                    else:
                        high_sum += p_hi
                for (j, coef), (p_lo, p_hi) in zip(terms, parts, strict=True):
                    # coef*x_j = -(sum of the others)
                    others_low = (-math.inf if low_inf - math.isinf(p_lo) > 0
                                  else low_sum - (0 if math.isinf(p_lo) else p_lo))
                    others_high = (math.inf if high_inf - math.isinf(p_hi) > 0
                                   else high_sum - (0 if math.isinf(p_hi) else p_hi))
                    new_lo, new_hi = -others_high, -others_low
                    if coef < 0:
                        new_lo, new_hi = -new_hi, -new_lo
                    new_lo, new_hi = new_lo / abs(coef), new_hi / abs(coef)
                    if new_lo > bounds[j][0] + 1e-9:
                        bounds[j][0], tightened = math.ceil(new_lo - 1e-9), True
                    if new_hi < bounds[j][1] - 1e-9:
                        bounds[j][1], tightened = math.floor(new_hi + 1e-9), True
            if not tightened:
                break
        return bounds

    def _unpin(self, hidden: list[bool], by_entry: list[list[int]]) -> bool:
        bounds = self._bounds(hidden)
        for j, (lo, hi) in enumerate(bounds):
            if not (hidden[j] and self.values[j] < THRESHOLD and lo == hi):
                continue
            picks = []
            for line_no in by_entry[j]:
                pick = self._smallest_published(hidden, (i for i, _ in self.lines[line_no]))
                if pick is not None:
                    picks.append(pick)
            if picks:
                hidden[min(picks, key=lambda i: (self.values[i], i))] = True
                return True
        return False

    def hidden(self) -> list[bool]:
        if self._hidden is None:
            by_entry: list[list[int]] = [[] for _ in self.values]
            for n, line in enumerate(self.lines):
                for i, _ in line:
                    by_entry[i].append(n)
            hidden = [0 < v < THRESHOLD for v in self.values]
            while True:
                self._secondary(hidden, by_entry)
                if not self._unpin(hidden, by_entry):
                    break
            self._hidden = hidden
        return self._hidden

    def publish(self, key: Hashable) -> Published:
        """The entry as a contract manager may see it: a count, "<5" or "*"."""
        i = self._index[key]
        if not self.suppress or not self.hidden()[i]:
            return self.values[i]
        return SMALL if self.values[i] < THRESHOLD else SUPPRESSED


def published(value: Published | None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def share(numerator: Published, denominator: Published) -> float | None:
    """A percentage (one decimal) when both counts are published and the base is non-zero."""
    if published(numerator) and published(denominator) and denominator:
        return round(100.0 * numerator / denominator, 1)
    return None


def change(current: Published, previous: Published) -> int | None:
    if published(current) and published(previous):
        return current - previous
    return None


def statistic(value: float | None, count: Published) -> float | None:
    """A median or percentile of `count` items: shown only for a published count of 5+."""
    if value is None or not published(count) or count < THRESHOLD:
        return None
    return round(float(value), 1)
