"""England working days and hours: bank holidays from the `holidays` library."""

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from models.working_days import (
    acknowledgement_due,
    add_working_days,
    add_working_hours,
    bank_holidays,
    is_working_day,
    working_days_between,
)

LONDON = ZoneInfo("Europe/London")


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)


# --- calendar --------------------------------------------------------------------


@pytest.mark.parametrize(
    "day",
    [
        date(2027, 3, 26),  # Good Friday 2027
        date(2027, 3, 29),  # Easter Monday 2027
        date(2027, 5, 3),  # early May bank holiday 2027
        date(2026, 5, 4),  # early May bank holiday 2026
        date(2027, 12, 27),  # Christmas Day (Sat) substitute
        date(2027, 12, 28),  # Boxing Day (Sun) substitute
        date(2026, 12, 28),  # Boxing Day (Sat) substitute
        date(2022, 9, 19),  # one-off: state funeral of Queen Elizabeth II
    ],
)
def test_bank_holidays_are_not_working_days(day):
    assert not is_working_day(day)


def test_weekends_are_not_working_days_and_ordinary_weekdays_are():
    assert not is_working_day(date(2027, 3, 27))  # Saturday
    assert not is_working_day(date(2027, 3, 28))  # Sunday
    assert is_working_day(date(2027, 3, 25))  # Maundy Thursday is an ordinary day
    assert is_working_day(date(2027, 3, 30))
    assert is_working_day(date(2027, 12, 29))


def test_scottish_holidays_do_not_count_in_england():
    assert is_working_day(date(2027, 1, 4))  # 2 January (observed) is Scotland only
    assert is_working_day(date(2027, 8, 2))  # Scottish summer bank holiday


def test_bank_holidays_are_cached_per_year():
    assert bank_holidays(2027) is bank_holidays(2027)
    assert date(2027, 3, 26) in bank_holidays(2027)


def test_datetimes_are_refused_because_the_day_depends_on_the_zone():
    with pytest.raises(TypeError):
        is_working_day(datetime(2027, 3, 26, 23, 30, tzinfo=UTC))


# --- add_working_days / working_days_between ---------------------------------------


def test_easter_2027_skips_good_friday_weekend_and_easter_monday():
    assert add_working_days(date(2027, 3, 25), 1) == date(2027, 3, 30)
    assert add_working_days(date(2027, 3, 25), 2) == date(2027, 3, 31)
    assert working_days_between(date(2027, 3, 25), date(2027, 3, 30)) == 1


def test_christmas_2027_substitute_days_are_skipped():
    assert add_working_days(date(2027, 12, 24), 1) == date(2027, 12, 29)
    assert working_days_between(date(2027, 12, 24), date(2027, 12, 31)) == 3


def test_christmas_2026_boxing_day_substitute_is_skipped():
    assert add_working_days(date(2026, 12, 24), 1) == date(2026, 12, 29)


def test_early_may_bank_holiday_is_skipped():
    assert add_working_days(date(2027, 4, 30), 1) == date(2027, 5, 4)


def test_ten_working_days_after_acceptance_across_easter():
    # No-first-contact timer: accepted Monday 22 March 2027.
    assert add_working_days(date(2027, 3, 22), 10) == date(2027, 4, 7)


def test_zero_working_days_is_the_start_itself():
    assert add_working_days(date(2027, 3, 27), 0) == date(2027, 3, 27)


def test_negative_working_days_are_refused():
    with pytest.raises(ValueError):
        add_working_days(date(2027, 3, 22), -1)


def test_working_days_between_counts_after_a_up_to_and_including_b():
    assert working_days_between(date(2027, 3, 22), date(2027, 3, 22)) == 0
    assert working_days_between(date(2027, 3, 22), date(2027, 3, 23)) == 1
    assert working_days_between(date(2027, 3, 19), date(2027, 3, 22)) == 1  # Fri -> Mon
    assert working_days_between(date(2027, 3, 30), date(2027, 3, 25)) == -1


def test_working_days_between_inverts_add_working_days():
    rng = random.Random(2027)
    for _ in range(300):
        start = date(2026, 1, 1) + timedelta(days=rng.randrange(730))
        n = rng.randrange(0, 30)
        end = add_working_days(start, n)
        assert working_days_between(start, end) == n
        assert working_days_between(end, start) == -n
        if n:
            assert is_working_day(end)


# --- add_working_hours ---------------------------------------------------------------


def test_working_hours_within_one_day():
    assert add_working_hours(london(2027, 3, 22, 10), 4) == london(2027, 3, 22, 14)


def test_working_hours_may_end_exactly_at_close_of_day():
    assert add_working_hours(london(2027, 3, 22, 13), 4) == london(2027, 3, 22, 17)


def test_working_hours_before_opening_count_from_nine():
    assert add_working_hours(london(2027, 3, 22, 7, 30), 1) == london(2027, 3, 22, 10)


def test_working_hours_roll_over_nights():
    assert add_working_hours(london(2027, 3, 22, 9), 16) == london(2027, 3, 23, 17)
    assert add_working_hours(london(2027, 3, 22, 16), 1.5) == london(2027, 3, 23, 9, 30)


def test_working_hours_skip_easter_and_the_clocks_going_forward():
    # Thursday 25 March 2027 16:00 GMT; clocks go forward Sunday 28 March.
    due = add_working_hours(datetime(2027, 3, 25, 16, tzinfo=UTC), 4)
    assert due == london(2027, 3, 30, 12)  # Tuesday, after Easter Monday
    assert due.tzinfo is UTC and due.hour == 11  # 12:00 BST is 11:00 UTC


def test_working_hours_utc_in_utc_out():
    due = add_working_hours(datetime(2027, 6, 11, 15, tzinfo=UTC), 4)  # Fri 16:00 BST
    assert due == datetime(2027, 6, 14, 11, tzinfo=UTC)  # Mon 12:00 BST
    assert due.tzinfo is UTC


def test_zero_working_hours_is_the_start_itself():
    start = london(2027, 3, 27, 12)
    assert add_working_hours(start, 0) == start


def test_working_hours_refuse_naive_or_negative_input():
    with pytest.raises(ValueError):
        add_working_hours(datetime(2027, 3, 22, 10), 1)
    with pytest.raises(ValueError):
        add_working_hours(london(2027, 3, 22, 10), -1)


# --- acknowledgement targets ---------------------------------------------------------


def test_friday_afternoon_urgent_flag_rolls_into_monday():
    raised = london(2027, 3, 19, 15)  # Friday 15:00
    assert acknowledgement_due("urgent", raised) == london(2027, 3, 22, 11)


def test_urgent_flag_raised_on_a_bank_holiday_counts_from_next_working_morning():
    assert acknowledgement_due("urgent", london(2027, 5, 3, 10)) == london(2027, 5, 4, 13)


def test_emergency_is_one_hour_of_clock_time_even_at_night_and_weekend():
    raised = london(2027, 3, 27, 23, 30)  # Saturday night
    assert acknowledgement_due("emergency", raised) == london(2027, 3, 28, 0, 30)


def test_emergency_hour_is_elapsed_time_across_the_clocks_going_forward():
    raised = datetime(2027, 3, 28, 0, 30, tzinfo=UTC)  # 00:30 GMT
    due = acknowledgement_due("emergency", raised)
    assert due - raised == timedelta(hours=1)
    assert due.astimezone(LONDON).hour == 2 and due.astimezone(LONDON).minute == 30  # BST


def test_routine_is_same_clock_time_on_second_working_day():
    assert acknowledgement_due("routine", london(2027, 3, 23, 10, 30)) == london(2027, 3, 25, 10, 30)


def test_routine_across_easter_and_daylight_saving():
    due = acknowledgement_due("routine", datetime(2027, 3, 25, 14, tzinfo=UTC))  # Thu 14:00 GMT
    assert due == london(2027, 3, 31, 14)  # Wednesday 14:00 BST
    assert due.tzinfo is UTC


@pytest.mark.parametrize(
    "raised",
    [
        london(2027, 3, 19, 18),  # Friday evening
        london(2027, 3, 20, 11),  # Saturday
        london(2027, 3, 22, 7, 45),  # Monday before nine
        london(2027, 3, 19, 17),  # Friday at close of day
    ],
)
def test_routine_raised_out_of_hours_counts_from_next_working_morning(raised):
    assert acknowledgement_due("routine", raised) == london(2027, 3, 24, 9)


def test_unknown_urgency_and_naive_datetime_are_refused():
    with pytest.raises(ValueError):
        acknowledgement_due("whenever", london(2027, 3, 22, 10))
    with pytest.raises(ValueError):
        acknowledgement_due("urgent", datetime(2027, 3, 22, 10))
