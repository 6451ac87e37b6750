"""The referral state machine of DESIGN §4 (FHIR Task status codes)."""

import pytest

from models import vocab
from models.referral_lifecycle import (
    ACTIONS,
    OPEN_STATES,
    REASON_REQUIRED_FOR,
    REASONS_FOR,
    REFERRAL_STATES,
    TERMINAL_STATES,
    IllegalTransition,
    LifecycleError,
    ReasonRequired,
    UnknownReason,
    allowed_actions,
    check_reason,
    is_open,
    next_status,
)

HAPPY_PATH = [
    ("draft", "send", "requested"),
    ("requested", "accept", "accepted"),
    ("accepted", "start", "in-progress"),
    ("in-progress", "hold", "on-hold"),
    ("on-hold", "resume", "in-progress"),
    ("in-progress", "complete", "completed"),
]


def test_statuses_are_fhir_task_codes_verbatim():
    fhir_task_codes = {
        "draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
        "in-progress", "on-hold", "failed", "completed", "entered-in-error",
    }  # fmt: skip
    assert set(REFERRAL_STATES) <= fhir_task_codes


@pytest.mark.parametrize(("status", "action", "to"), HAPPY_PATH)
def test_happy_path(status, action, to):
    assert next_status(status, action) == to


def test_decline_from_requested_is_rejected():
    assert next_status("requested", "decline") == "rejected"


@pytest.mark.parametrize("status", ["in-progress", "on-hold"])
def test_fail_once_work_has_begun(status):
    assert next_status(status, "fail") == "failed"


@pytest.mark.parametrize("status", ["draft", "requested", "accepted", "in-progress", "on-hold"])
def test_cancel_from_every_open_state(status):
    assert next_status(status, "cancel") == "cancelled"


@pytest.mark.parametrize("status", ["rejected", "cancelled", "completed", "failed"])
def test_closed_referrals_allow_nothing(status):
    assert allowed_actions(status) == []
    assert not is_open(status)
    with pytest.raises(IllegalTransition):
        next_status(status, "cancel")


def test_open_and_terminal_states_partition_all_states():
    assert set(OPEN_STATES) == {"draft", "requested", "accepted", "in-progress", "on-hold"}
    assert set(OPEN_STATES) | set(TERMINAL_STATES) == set(REFERRAL_STATES)
    assert not set(OPEN_STATES) & set(TERMINAL_STATES)


def test_allowed_actions_per_status():
    assert allowed_actions("draft") == ["send", "cancel"]
    assert allowed_actions("requested") == ["accept", "decline", "cancel"]
    assert allowed_actions("accepted") == ["start", "cancel"]
    assert allowed_actions("in-progress") == ["hold", "complete", "fail", "cancel"]
    assert allowed_actions("on-hold") == ["resume", "fail", "cancel"]


def test_every_action_leads_to_a_known_status_from_known_statuses():
    assert set(ACTIONS) == {
        "send", "accept", "decline", "start", "hold", "resume", "complete", "fail", "cancel",
    }  # fmt: skip
    for sources, target in ACTIONS.values():
        assert target in REFERRAL_STATES
        assert set(sources) <= set(OPEN_STATES)


def test_illegal_transition_says_what_is_allowed():
    with pytest.raises(IllegalTransition) as caught:
        next_status("draft", "accept")
    error = caught.value
    assert (error.status, error.action, error.allowed) == ("draft", "accept", ["send", "cancel"])
    assert isinstance(error, LifecycleError) and isinstance(error, ValueError)


def test_unknown_action_is_an_illegal_transition():
    with pytest.raises(IllegalTransition):
        next_status("requested", "approve")


def test_unknown_status_is_a_programming_error():
    with pytest.raises(ValueError):
        allowed_actions("pending")


def test_reason_required_for_rejected_cancelled_on_hold_failed():
    assert REASON_REQUIRED_FOR == {"rejected", "cancelled", "on-hold", "failed"}
    for state in REASON_REQUIRED_FOR:
        with pytest.raises(ReasonRequired):
            check_reason(state, None)
        with pytest.raises(ReasonRequired):
            check_reason(state, "")


def test_decline_reasons_from_design():
    assert vocab.DECLINE_REASONS == (
        "no-capacity", "not-eligible", "needs-specialist-support", "person-declined",
        "could-not-contact", "returned-with-advice", "other",
    )  # fmt: skip
    for code in vocab.DECLINE_REASONS:
        check_reason("rejected", code)


def test_consent_withdrawal_is_a_cancel_reason():
    check_reason("cancelled", "consent-withdrawn")


def test_reason_from_another_vocabulary_is_unknown():
    with pytest.raises(UnknownReason) as caught:
        check_reason("rejected", "consent-withdrawn")
    assert caught.value.allowed == list(vocab.DECLINE_REASONS)


def test_fail_reasons_accept_could_not_engage():
    check_reason("failed", "could-not-engage")
    with pytest.raises(UnknownReason):
        check_reason("failed", "no-capacity")


def test_states_without_reasons_take_none():
    check_reason("accepted", None)
    check_reason("completed", None)
    with pytest.raises(UnknownReason):
        check_reason("completed", "other")


def test_every_reason_vocabulary_offers_other():
    for state, codes in REASONS_FOR.items():
        assert "other" in codes, state


def test_design_vocabularies_are_reexported_as_tuples_of_strings():
    from models import referral_lifecycle

    names = [
        "JOURNEY_STATES", "FLAG_STATES", "FLAG_OUTCOMES", "FLAG_TRIGGERS", "CONCERN_CATEGORIES",
        "URGENCIES", "CONTACT_OUTCOMES", "CAPACITY", "OFFER_STATUSES", "RESPONSIBILITY_SCOPES",
        "ROLES", "DECLINE_REASONS", "CANCEL_REASONS", "HOLD_REASONS", "FAIL_REASONS",
    ]  # fmt: skip
    for name in names:
        values = getattr(referral_lifecycle, name)
        assert values is getattr(vocab, name)
        assert isinstance(values, tuple) and all(isinstance(v, str) for v in values), name
        assert len(set(values)) == len(values), name
    assert len(referral_lifecycle.ROLES) == 7
    assert referral_lifecycle.URGENCIES == ("emergency", "urgent", "routine")
