"""Small-number suppression for contract managers' figures (DESIGN §5 rule 2)."""

import itertools
import random

import pytest

from models.suppression import (
    SMALL,
    SUPPRESSED,
    THRESHOLD,
    SuppressedTable,
    is_suppressed,
    suppress_series,
    suppress_table,
)


def table(rows: list[list[int]]) -> dict[tuple[str, str], int]:
    return {(f"r{i}", f"c{j}"): v for i, row in enumerate(rows) for j, v in enumerate(row)}


def lines_of(t: SuppressedTable, truth: dict) -> list[list[tuple[object, int]]]:
    """Every line of the published table as (published, true) pairs, totals included."""
    true_row = {r: sum(truth.get((r, c), 0) for c in t.cols) for r in t.rows}
    true_col = {c: sum(truth.get((r, c), 0) for r in t.rows) for c in t.cols}
    grand = sum(truth.values())
    lines = []
    if t.row_totals:
        for r in t.rows:
            line = [(t.cells[r, c], truth.get((r, c), 0)) for c in t.cols]
            lines.append([*line, (t.row_totals[r], true_row[r])])
        lines.append([(t.row_totals[r], true_row[r]) for r in t.rows] + [(t.grand_total, grand)])
    if t.col_totals:
        for c in t.cols:
            line = [(t.cells[r, c], truth.get((r, c), 0)) for r in t.rows]
            lines.append([*line, (t.col_totals[c], true_col[c])])
        lines.append([(t.col_totals[c], true_col[c]) for c in t.cols] + [(t.grand_total, grand)])
    return lines


def assert_truthful(published: object, true: int) -> None:
    """(a) a published entry is the true value, or a marker that is true of it."""
    if published == SMALL:
        assert 1 <= true < THRESHOLD
    elif published == SUPPRESSED:
        assert true >= THRESHOLD
    else:
        assert published == true
    # (b) every true value 1-4 is suppressed.
    if 1 <= true < THRESHOLD:
        assert published == SMALL


# --- primary suppression -------------------------------------------------------------


def test_counts_of_one_to_four_become_less_than_five_and_zero_stays_zero():
    t = suppress_table(table([[0, 1, 4], [0, 5, 30]]), row_totals=False, col_totals=False)
    assert [t.cells["r0", c] for c in t.cols] == [0, SMALL, SMALL]
    assert [t.cells["r1", c] for c in t.cols] == [0, 5, 30]
    assert t.grand_total is None and t.row_totals == {} and t.col_totals == {}


def test_a_table_without_small_counts_is_published_whole():
    t = suppress_table(table([[5, 10], [0, 7]]))
    assert t.cells == table([[5, 10], [0, 7]])
    assert t.row_totals == {"r0": 15, "r1": 7}
    assert t.col_totals == {"c0": 5, "c1": 17}
    assert t.grand_total == 22
    assert t.protected


def test_small_totals_are_suppressed_too():
    t = suppress_table(table([[0, 0], [0, 3]]))
    assert t.row_totals["r1"] == SMALL and t.col_totals["c1"] == SMALL and t.grand_total == SMALL


def test_missing_pairs_count_as_zero():
    t = suppress_table({("a", "x"): 9, ("b", "y"): 12})
    assert t.cells["a", "y"] == 0 and t.cells["b", "x"] == 0
    assert t.rows == ["a", "b"] and t.cols == ["x", "y"]


def test_empty_table():
    t = suppress_table({})
    assert t.cells == {} and t.grand_total == 0


@pytest.mark.parametrize("bad", [-1, 2.0, True, "3"])
def test_counts_must_be_non_negative_integers(bad):
    with pytest.raises((TypeError, ValueError)):
        suppress_table({("a", "x"): bad})


# --- secondary suppression -----------------------------------------------------------


def test_lone_small_cell_cannot_be_recovered_from_its_row_total():
    # Without secondary suppression "<5", 12, 30 | 45 gives the "<5" away as 3.
    counts, total = suppress_series({"a": 3, "b": 12, "c": 30}, 45)
    assert counts == {"a": SMALL, "b": SUPPRESSED, "c": 30}
    assert total == 45


def test_partner_is_the_smallest_non_zero_entry():
    counts, total = suppress_series({"a": 0, "b": 2, "c": 40, "d": 9}, 51)
    assert counts == {"a": 0, "b": SMALL, "c": 40, "d": SUPPRESSED}


def test_two_small_cells_summing_to_two_are_protected_further():
    # "<5", "<5", 10 | 12 would show both hidden cells are 1.
    counts, total = suppress_series({"a": 1, "b": 1, "c": 10}, 12)
    assert counts == {"a": SMALL, "b": SMALL, "c": SUPPRESSED} and total == 12


def test_partner_of_five_next_to_a_one_is_not_enough():
    # "<5" + "*" = 6 forces 1 + 5, so a third entry has to go.
    counts, total = suppress_series({"a": 1, "b": 5, "c": 100}, 106)
    assert counts == {"a": SMALL, "b": SUPPRESSED, "c": SUPPRESSED} and total == 106


def test_series_without_total_needs_only_primary_suppression():
    counts, total = suppress_series({"a": 3, "b": 12}, None)
    assert counts == {"a": SMALL, "b": 12} and total is None


def test_small_cell_is_protected_in_its_row_and_its_column():
    truth = table([[3, 20, 30], [15, 25, 35], [40, 45, 50]])
    t = suppress_table(truth)
    hidden = {rc for rc, v in t.cells.items() if is_suppressed(v)}
    assert ("r0", "c0") in hidden
    assert sum(1 for r, _ in hidden if r == "r0") >= 2
    assert sum(1 for _, c in hidden if c == "c0") >= 2
    for line in lines_of(t, truth):
        assert sum(is_suppressed(p) for p, _ in line) != 1


def test_small_row_total_gets_a_partner_in_the_totals_column():
    # The totals column 4 + 50 + 60 = 114 is a line like any other, so the
    # "<5" row total needs a hidden partner there, and that hidden total in turn
    # needs one among its own cells.
    truth = table([[4, 0], [20, 30], [25, 35]])
    t = suppress_table(truth)
    assert t.row_totals == {"r0": SMALL, "r1": SUPPRESSED, "r2": 60}
    assert t.cells["r1", "c0"] == SUPPRESSED
    for line in lines_of(t, truth):
        assert sum(is_suppressed(p) for p, _ in line) != 1


def test_only_row_totals():
    truth = table([[2, 9, 11], [8, 12, 6]])
    t = suppress_table(truth, col_totals=False)
    assert t.col_totals == {}
    assert t.cells["r0", "c0"] == SMALL and t.cells["r0", "c1"] == SUPPRESSED
    assert t.row_totals == {"r0": 22, "r1": 26} and t.grand_total == 48
    for line in lines_of(t, truth):
        assert sum(is_suppressed(p) for p, _ in line) != 1


def test_whole_table_below_five_is_reported_unprotected():
    # Four non-zero cells and a grand total under 5: each cell must be 1.
    t = suppress_table(table([[1, 1], [1, 1]]))
    assert all(v == SMALL for v in t.cells.values())
    assert not t.protected


# --- properties over random tables ---------------------------------------------------


def random_table(rng: random.Random, max_side: int = 6) -> dict[tuple[str, str], int]:
    rows, cols = rng.randint(1, max_side), rng.randint(1, max_side)
    # Skewed towards the small counts that make suppression interesting.
    choices = [0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 9, 12, 20, 45, 150]
    return table([[rng.choice(choices) for _ in range(cols)] for _ in range(rows)])


@pytest.mark.parametrize("flags", [(True, True), (True, False), (False, True)])
def test_random_tables_publish_only_true_or_suppressed_values(flags):
    rng = random.Random(20270326)
    for _ in range(400):
        truth = random_table(rng)
        t = suppress_table(truth, *flags)
        lines = lines_of(t, truth)
        for line in lines:
            for published, true in line:
                assert_truthful(published, true)
            # (c) no line has exactly one suppressed entry, so none is recoverable
            # by subtracting the rest of its line from its total.
            assert sum(is_suppressed(p) for p, _ in line) != 1, (truth, t)
        for rc, true in truth.items():
            assert_truthful(t.cells[rc], true)


def test_random_series_publish_only_true_or_suppressed_values():
    rng = random.Random(5)
    for _ in range(500):
        counts = {f"k{i}": rng.choice([0, 1, 2, 3, 4, 5, 8, 13, 40]) for i in range(rng.randint(1, 8))}
        total = sum(counts.values()) + rng.choice([0, 0, 0, 3, 10])
        published, published_total = suppress_series(counts, total)
        pairs = [(published[k], counts[k]) for k in counts] + [(published_total, total)]
        for p, true in pairs:
            assert_truthful(p, true)
        assert sum(is_suppressed(p) for p, _ in pairs) != 1


def _possible_tables(t: SuppressedTable) -> list[dict]:
    """Every table consistent with what was published: a reader's brute force."""

    def fits(published: object, value: int) -> bool:
        if published == SMALL:
            return 1 <= value < THRESHOLD
        if published == SUPPRESSED:
            return value >= THRESHOLD
        return published == value

    cap = t.grand_total if isinstance(t.grand_total, int) else 40

    def options(published: object) -> range | tuple[int, ...]:
        if published == SMALL:
            return range(1, THRESHOLD)
        if published == SUPPRESSED:
            return range(THRESHOLD, cap + 1)
        return (published,)

    per_row = []
    for r in t.rows:
        choices = itertools.product(*(options(t.cells[r, c]) for c in t.cols))
        per_row.append([row for row in choices if fits(t.row_totals[r], sum(row))])
    found = []
    for rows in itertools.product(*per_row):
        cols_ok = all(fits(t.col_totals[c], sum(row[j] for row in rows)) for j, c in enumerate(t.cols))
        if cols_ok and fits(t.grand_total, sum(map(sum, rows))):
            found.append({"rows": rows, "row_totals": [sum(row) for row in rows]})
    return found


def test_no_small_count_can_be_pinned_down_in_small_tables():
    rng = random.Random(99)
    checked = 0
    while checked < 150:
        shape = rng.choice([(2, 2), (2, 3), (3, 2)])
        values = [0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 9]
        truth = table([[rng.choice(values) for _ in range(shape[1])] for _ in range(shape[0])])
        t = suppress_table(truth)
        if not t.protected or sum(map(is_suppressed, t.cells.values())) > 4:
            continue  # keep the brute force quick
        checked += 1
        tables = _possible_tables(t)
        for i, r in enumerate(t.rows):
            for j, c in enumerate(t.cols):
                if t.cells[r, c] == SMALL:
                    assert len({found["rows"][i][j] for found in tables}) > 1, (truth, t)
            if t.row_totals[r] == SMALL:
                assert len({found["row_totals"][i] for found in tables}) > 1, (truth, t)


def test_no_small_count_can_be_pinned_down_in_short_series():
    for n in range(1, 5):
        for counts in itertools.product([0, 1, 2, 3, 4, 5, 7], repeat=n):
            total = sum(counts)
            published, published_total = suppress_series(dict(enumerate(counts)), total)
            hidden = [k for k, p in published.items() if p == SMALL]
            if not hidden or (total < THRESHOLD and sum(1 for v in counts if v) == total):
                continue  # all hidden and still deducible: nothing more can be done
            cap = total if isinstance(published_total, int) else 40
            ranges = [
                range(1, 5) if p == SMALL else range(5, cap + 1) if p == SUPPRESSED else (p,)
                for p in published.values()
            ]
            sums_ok = {
                combo
                for combo in itertools.product(*ranges)
                if (sum(combo) == published_total)
                or (published_total == SMALL and 1 <= sum(combo) < 5)
                or (published_total == SUPPRESSED and sum(combo) >= 5)
            }
            for k in hidden:
                assert len({combo[k] for combo in sums_ok}) > 1, (counts, published)
