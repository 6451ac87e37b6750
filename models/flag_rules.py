"""When "specialist statutory pick-up needed" flags are raised (DESIGN §5 rule 3).

Plain values in, decisions out: the sweep and the operations layer load the
rows, these functions decide, so the rules can be tested without a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta

from models.vocab import CONTACT_OUTCOMES
from models.working_days import add_working_days

__all__ = [
    "FIRST_CONTACT_WORKING_DAYS",
    "MISSED_CONTACT_OUTCOMES",
    "MISSED_CONTACT_RUN",
    "SAFETY_NET_DAYS",
    "first_contact_due",
    "in_safety_net",
    "missed_contacts_run",
    "response_due",
    "responsibility_gap",
    "safety_net_end",
]

SAFETY_NET_DAYS = 90
FIRST_CONTACT_WORKING_DAYS = 10
MISSED_CONTACT_RUN = 3
MISSED_CONTACT_OUTCOMES = frozenset({"did-not-attend", "could-not-contact"})


def responsibility_gap(
    needs: Iterable[str], statutory_only: Iterable[str], org_holds: Iterable[str]
) -> set[str]:
    """The person's statutory-only needs that the receiving organisation does not hold.

    A non-empty result raises a `responsibility-gap` flag: someone statutory must
    keep doing that part, or the step-down leaves a hole in the person's care.
    """
    return (set(needs) & set(statutory_only)) - set(org_holds)


def missed_contacts_run(outcomes_newest_first: Sequence[str], run: int = MISSED_CONTACT_RUN) -> bool:
    """True if the latest `run` contacts were all did-not-attend / could-not-contact.

    Any attended contact breaks the run, so engagement that picks up again stops
    the flag.
    """
    unknown = set(outcomes_newest_first) - set(CONTACT_OUTCOMES)
    if unknown:
        raise ValueError(f"unknown contact outcome(s): {sorted(unknown)}")
    latest = outcomes_newest_first[:run]
    return len(latest) == run and all(o in MISSED_CONTACT_OUTCOMES for o in latest)


def safety_net_end(discharge: date, days: int = SAFETY_NET_DAYS) -> date:
    """Last day of the fast-track step-up window: `days` calendar days after discharge."""
    if days < 0:
        raise ValueError("days must be zero or more")
    return discharge + timedelta(days=days)


def in_safety_net(
    journey_status: str,
    discharged_on: date | None,
    safety_net_ends: date | None,
    today: date,
) -> bool:
    """Whether step-up is fast-tracked today.

    True while the journey is `active` and either not yet discharged from
    statutory care, or discharged with `today` on or before the safety net's last
    day. Discharge does not change the journey status (DESIGN §4): the journey
    stays `active` until the sweep finishes it, so the dates decide, and a
    journey the sweep has not yet finished is still judged by its dates.
    """
    if journey_status != "active":
        return False
    if discharged_on is None:
        return True
    ends = safety_net_ends if safety_net_ends is not None else safety_net_end(discharged_on)
    return today <= ends


def response_due(sent_on: date, response_target_working_days: int) -> date:
    """Last day a `requested` referral may stay unanswered (offer's target, working days)."""
    return add_working_days(sent_on, response_target_working_days)


def first_contact_due(accepted_on: date) -> date:
    """Last day for the first contact after acceptance (10 working days)."""
    return add_working_days(accepted_on, FIRST_CONTACT_WORKING_DAYS)
