"""The referral state machine of DESIGN §4, with FHIR Task status codes verbatim.

Pure rules only: which action moves a referral from which status to which, and
which coded reasons each end state accepts. The operations layer applies them,
writes the referral event and checks permissions. Every vocabulary of DESIGN
lives in `models.vocab` (the CHECK constraints use it too) and is re-exported here
so callers of the lifecycle need one import.
"""

from __future__ import annotations

from models.vocab import (
    CANCEL_REASONS,
    CAPACITY,
    CONCERN_CATEGORIES,
    CONTACT_OUTCOMES,
    DECLINE_REASONS,
    FAIL_REASONS,
    FLAG_OUTCOMES,
    FLAG_STATES,
    FLAG_TRIGGERS,
    HOLD_REASONS,
    JOURNEY_STATES,
    OFFER_STATUSES,
    OPEN_REFERRAL_STATES,
    REFERRAL_STATES,
    RESPONSIBILITY_SCOPES,
    ROLES,
    URGENCIES,
)

__all__ = [
    "ACTIONS",
    "CANCEL_REASONS",
    "CAPACITY",
    "CONCERN_CATEGORIES",
    "CONTACT_OUTCOMES",
    "DECLINE_REASONS",
    "FAIL_REASONS",
    "FLAG_OUTCOMES",
    "FLAG_STATES",
    "FLAG_TRIGGERS",
    "HOLD_REASONS",
    "JOURNEY_STATES",
    "OFFER_STATUSES",
    "OPEN_STATES",
    "REASONS_FOR",
    "REASON_REQUIRED_FOR",
    "REFERRAL_STATES",
    "RESPONSIBILITY_SCOPES",
    "ROLES",
    "TERMINAL_STATES",
    "URGENCIES",
    "IllegalTransition",
    "LifecycleError",
    "ReasonRequired",
    "UnknownReason",
    "allowed_actions",
    "check_reason",
    "is_open",
    "next_status",
]

OPEN_STATES: tuple[str, ...] = OPEN_REFERRAL_STATES
TERMINAL_STATES: tuple[str, ...] = tuple(s for s in REFERRAL_STATES if s not in OPEN_STATES)

# action -> (statuses it may be taken from, status it leads to). The action names
# are the URL verbs of POST /referrals/{id}/{action}.
ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "send": (("draft",), "requested"),
    "accept": (("requested",), "accepted"),
    "decline": (("requested",), "rejected"),
    "start": (("accepted",), "in-progress"),
    "hold": (("in-progress",), "on-hold"),
    "resume": (("on-hold",), "in-progress"),
    "complete": (("in-progress",), "completed"),
    # "could not engage" only makes sense once work has begun.
    "fail": (("in-progress", "on-hold"), "failed"),
    # The referrer may withdraw at any point before the referral is closed.
    "cancel": (OPEN_STATES, "cancelled"),
}

# Coded reasons each reason-bearing status accepts; the keys are exactly the
# statuses for which a reason is mandatory (mirrored by a CHECK constraint).
REASONS_FOR: dict[str, tuple[str, ...]] = {
    "rejected": DECLINE_REASONS,
    "cancelled": CANCEL_REASONS,
    "on-hold": HOLD_REASONS,
    "failed": FAIL_REASONS,
}
REASON_REQUIRED_FOR: frozenset[str] = frozenset(REASONS_FOR)


class LifecycleError(ValueError):
    """Base for every referral rule violation (maps to HTTP 409/422 at the edge)."""


class IllegalTransition(LifecycleError):
    """The action is not allowed from the referral's current status."""

    def __init__(self, status: str, action: str, allowed: list[str]) -> None:
        self.status = status
        self.action = action
        self.allowed = allowed
        listed = ", ".join(allowed) or "none"
        super().__init__(f"cannot {action} a referral that is {status}; allowed: {listed}")


class ReasonRequired(LifecycleError):
    """Moving to this status needs a coded reason."""

    def __init__(self, to_state: str) -> None:
        self.to_state = to_state
        self.allowed = list(REASONS_FOR.get(to_state, ()))
        super().__init__(f"a reason is required to make a referral {to_state}")


class UnknownReason(LifecycleError):
    """The reason code is not in the vocabulary for this status."""

    def __init__(self, to_state: str, reason_code: str) -> None:
        self.to_state = to_state
        self.reason_code = reason_code
        self.allowed = list(REASONS_FOR.get(to_state, ()))
        listed = ", ".join(self.allowed) or "no reason codes"
        super().__init__(f"{reason_code!r} is not a reason for {to_state}; expected {listed}")


def _require_known(status: str) -> None:
    if status not in REFERRAL_STATES:
        # A corrupt status is a programming error, not a user's illegal request.
        raise ValueError(f"unknown referral status {status!r}")


def is_open(status: str) -> bool:
    """True while the referral can still change (draft up to on-hold)."""
    _require_known(status)
    return status in OPEN_STATES


def allowed_actions(status: str) -> list[str]:
    """Actions that may be taken from `status`, in ACTIONS order (for buttons and 409s)."""
    _require_known(status)
    return [action for action, (sources, _) in ACTIONS.items() if status in sources]


def next_status(status: str, action: str) -> str:
    """The status `action` leads to from `status`, or raise IllegalTransition."""
    allowed = allowed_actions(status)
    if action not in allowed:
        raise IllegalTransition(status, action, allowed)
    return ACTIONS[action][1]


def check_reason(to_state: str, reason_code: str | None) -> None:
    """Raise ReasonRequired or UnknownReason unless `reason_code` fits `to_state`.

    Statuses without a vocabulary take no reason code at all, so a stray code is
    reported rather than stored where nothing will ever read it.
    """
    _require_known(to_state)
    if not reason_code:
        if to_state in REASON_REQUIRED_FOR:
            raise ReasonRequired(to_state)
        return
    if reason_code not in REASONS_FOR.get(to_state, ()):
        raise UnknownReason(to_state, reason_code)
