"""Flag-raising rules of DESIGN §5 rule 3, on plain values."""

from datetime import date

import pytest

from models.flag_rules import (
    first_contact_due,
    in_safety_net,
    missed_contacts_run,
    response_due,
    responsibility_gap,
    safety_net_end,
)

STATUTORY_ONLY = {"medication-management", "crisis-response", "care-coordination"}


def test_statutory_only_need_the_vcse_cannot_hold_is_a_gap():
    needs = {"medication-management", "peer-support", "housing-advice"}
    vcse_holds = {"peer-support", "housing-advice", "social-connection"}
    assert responsibility_gap(needs, STATUTORY_ONLY, vcse_holds) == {"medication-management"}


def test_no_gap_when_needs_are_shared_or_vcse_responsibilities():
    assert responsibility_gap({"peer-support"}, STATUTORY_ONLY, {"peer-support"}) == set()
    assert responsibility_gap(set(), STATUTORY_ONLY, set()) == set()


def test_no_gap_when_the_receiving_organisation_holds_the_duty():
    needs = {"crisis-response", "care-coordination"}
    assert responsibility_gap(needs, STATUTORY_ONLY, {"crisis-response"}) == {"care-coordination"}
    assert responsibility_gap(needs, STATUTORY_ONLY, needs) == set()


@pytest.mark.parametrize(
    "outcomes",
    [
        ["did-not-attend", "did-not-attend", "did-not-attend"],
        ["could-not-contact", "did-not-attend", "could-not-contact", "attended"],
    ],
)
def test_three_consecutive_missed_contacts(outcomes):
    assert missed_contacts_run(outcomes)


@pytest.mark.parametrize(
    "outcomes",
    [
        [],
        ["did-not-attend", "did-not-attend"],
        ["attended", "did-not-attend", "did-not-attend", "did-not-attend"],
        ["did-not-attend", "attended", "did-not-attend", "could-not-contact"],
    ],
)
def test_attendance_breaks_the_run(outcomes):
    assert not missed_contacts_run(outcomes)


def test_unknown_contact_outcome_is_refused():
    with pytest.raises(ValueError):
        missed_contacts_run(["no-show", "did-not-attend", "did-not-attend"])


def test_safety_net_is_ninety_days_by_default():
    assert safety_net_end(date(2027, 1, 4)) == date(2027, 4, 4)
    assert safety_net_end(date(2027, 1, 4), days=28) == date(2027, 2, 1)
    with pytest.raises(ValueError):
        safety_net_end(date(2027, 1, 4), days=-1)


def test_active_journey_before_discharge_is_in_safety_net():
    assert in_safety_net("active", None, None, date(2027, 6, 1))


def test_discharged_journey_is_in_safety_net_up_to_and_including_last_day():
    discharged, ends = date(2027, 1, 4), date(2027, 4, 4)
    assert in_safety_net("active", discharged, ends, date(2027, 4, 4))
    assert not in_safety_net("active", discharged, ends, date(2027, 4, 5))


def test_safety_net_end_defaults_from_discharge_date():
    assert in_safety_net("active", date(2027, 1, 4), None, date(2027, 4, 4))
    assert not in_safety_net("active", date(2027, 1, 4), None, date(2027, 4, 5))


@pytest.mark.parametrize("status", ["planned", "finished", "cancelled"])
def test_journeys_that_are_not_active_are_outside_the_safety_net(status):
    assert not in_safety_net(status, date(2027, 1, 4), date(2027, 4, 4), date(2027, 2, 1))


def test_response_target_counts_working_days_over_easter():
    assert response_due(date(2027, 3, 24), 3) == date(2027, 3, 31)


def test_first_contact_due_ten_working_days_after_acceptance():
    assert first_contact_due(date(2027, 12, 20)) == date(2028, 1, 6)
