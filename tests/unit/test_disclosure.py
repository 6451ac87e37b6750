"""Small-number suppression for contract managers' figures (DESIGN §5 rule 2): the one
implementation, service.flows.disclosure.Register, on two-way tables with their totals."""

import itertools
import random

import pytest

from service.flows.disclosure import SMALL, SUPPRESSED, THRESHOLD, Register


def publish(rows: list[list[int]]) -> tuple[list[list[object]], list[object], list[object],
                                            object]:
    """Register a table with row, column and grand totals; publish cells and totals."""
    reg = Register()
    n_cols = len(rows[0])
    cells = [[reg.add(("cell", i, j), v) for j, v in enumerate(row)] for i, row in enumerate(rows)]
    row_totals = [reg.add(("row", i), sum(row)) for i, row in enumerate(rows)]
    col_totals = [reg.add(("col", j), sum(row[j] for row in rows)) for j in range(n_cols)]
    grand = reg.add("grand", sum(map(sum, rows)))
    for i, row_keys in enumerate(cells):
        reg.total(row_totals[i], row_keys)
    for j in range(n_cols):
        reg.total(col_totals[j], [row_keys[j] for row_keys in cells])
    reg.total(grand, row_totals)
    reg.total(grand, col_totals)
    return ([[reg.publish(k) for k in row_keys] for row_keys in cells],
            [reg.publish(k) for k in row_totals], [reg.publish(k) for k in col_totals],
            reg.publish(grand))


def assert_truthful(published: object, true: int) -> None:
    if published == SMALL:
        assert 1 <= true < THRESHOLD
    elif published == SUPPRESSED:
        assert true >= THRESHOLD
    else:
        assert published == true
    if 1 <= true < THRESHOLD:
        assert published == SMALL


def test_counts_of_one_to_four_become_less_than_five_and_zero_stays_zero():
    cells, rows, cols, grand = publish([[0, 1, 4], [0, 5, 30]])
    assert cells[0] == [0, SMALL, SMALL]
    assert rows[0] == SUPPRESSED or rows[0] == 5  # 5 may show: two hidden partners in the row
    assert cols[0] == 0


def test_a_table_without_small_counts_is_published_whole():
    assert publish([[5, 6], [7, 0]]) == ([[5, 6], [7, 0]], [11, 7], [12, 6], 18)


def test_lone_small_cell_cannot_be_recovered_from_its_totals():
    cells, rows, cols, _ = publish([[2, 12, 30], [9, 8, 40]])
    assert cells[0][0] == SMALL
    # Its row and its column each hide one more entry, so no subtraction gives it away.
    assert sum(v in (SMALL, SUPPRESSED) for v in [*cells[0], rows[0]]) >= 2
    assert sum(v in (SMALL, SUPPRESSED) for v in [cells[0][0], cells[1][0], cols[0]]) >= 2


def test_partner_is_the_smallest_non_zero_entry():
    cells, *_ = publish([[3, 0, 6, 20], [7, 7, 7, 7]])
    assert cells[0][:3] == [SMALL, 0, SUPPRESSED] and cells[0][3] == 20


def test_counts_must_be_non_negative_integers_and_lines_must_add_up():
    reg = Register()
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError):
            reg.add("x", bad)
    reg.add("a", 2)
    reg.add("total", 3)
    with pytest.raises(ValueError):
        reg.total("total", ["a"])


def _possible(rows_pub, row_tot, col_tot, grand) -> list[tuple[tuple[int, ...], ...]]:
    """Every table consistent with what was published: a reader's brute force."""
    cap = grand if isinstance(grand, int) else 40

    def options(p):
        if p == SMALL:
            return range(1, THRESHOLD)
        if p == SUPPRESSED:
            return range(THRESHOLD, cap + 1)
        return (p,)

    def fits(p, v):
        return (1 <= v < THRESHOLD) if p == SMALL else (v >= THRESHOLD) if p == SUPPRESSED \
            else p == v

    per_row = [[r for r in itertools.product(*map(options, row)) if fits(row_tot[i], sum(r))]
               for i, row in enumerate(rows_pub)]
    return [rows for rows in itertools.product(*per_row)
            if all(fits(col_tot[j], sum(r[j] for r in rows)) for j in range(len(col_tot)))
            and fits(grand, sum(map(sum, rows)))]


def test_no_small_count_can_be_pinned_down_in_small_tables():
    rng = random.Random(99)
    checked = 0
    while checked < 120:
        shape = rng.choice([(2, 2), (2, 3), (3, 2)])
        truth = [[rng.choice([0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 9]) for _ in range(shape[1])]
                 for _ in range(shape[0])]
        cells, rows, cols, grand = publish(truth)
        for i, row in enumerate(truth):
            for j, v in enumerate(row):
                assert_truthful(cells[i][j], v)
            assert_truthful(rows[i], sum(row))
        assert_truthful(grand, sum(map(sum, truth)))
        small_total = sum(map(sum, truth)) < THRESHOLD
        hidden = sum(v in (SMALL, SUPPRESSED) for row in cells for v in row)
        if small_total or hidden > 4:
            continue  # a total under 5 cannot be protected; keep the brute force quick
        checked += 1
        tables = _possible(cells, rows, cols, grand)
        assert tuple(map(tuple, truth)) in tables  # the reader's search is complete
        for i in range(shape[0]):
            for j in range(shape[1]):
                if cells[i][j] == SMALL:
                    assert len({t[i][j] for t in tables}) > 1, (truth, cells)
