"""Permissions as named constants; roles and API scopes map to them."""

from __future__ import annotations

# Directory and administration
ORGANISATIONS_READ = "organisations:read"
ORGANISATION_ADMIN = "organisation:admin"  # teams, users, memberships, API clients of one's own org
ALLIANCES_READ = "alliances:read"
# Offers
OFFERS_READ = "offers:read"
OFFERS_MANAGE = "offers:manage"
# People and consent
PEOPLE_READ = "people:read"
PEOPLE_WRITE = "people:write"
ABOUT_ME_WRITE = "people:about-me"
CONSENT_WRITE = "consents:write"
SHARE_WITHOUT_CONSENT = "consents:alternative-basis"
# Journeys and referrals
JOURNEYS_WRITE = "journeys:write"
STEP_UP = "journeys:step-up"
REFERRALS_READ = "referrals:read"
REFERRALS_REFER = "referrals:refer"  # create, send, cancel
REFERRALS_DECIDE = "referrals:decide"  # accept, decline, start, hold, resume, complete, fail
REFERRALS_ASSIGN = "referrals:assign"
CONTACTS_WRITE = "contacts:write"
NOTES_WRITE = "notes:write"
# Flags
FLAGS_RAISE = "flags:raise"
FLAGS_READ = "flags:read"
FLAGS_WORK = "flags:work"  # acknowledge, resolve
# Oversight
FLOWS_READ = "flows:read"
AUDIT_READ = "audit:read"
METRICS_READ = "metrics:read"

_VCSE_WORKER = {
    OFFERS_READ, PEOPLE_READ, REFERRALS_READ, REFERRALS_DECIDE, CONTACTS_WRITE, NOTES_WRITE,
    FLAGS_RAISE, ORGANISATIONS_READ,
}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "care_coordinator": frozenset({
        ORGANISATIONS_READ, OFFERS_READ, PEOPLE_READ, PEOPLE_WRITE, ABOUT_ME_WRITE, CONSENT_WRITE,
        JOURNEYS_WRITE, STEP_UP, REFERRALS_READ, REFERRALS_REFER, NOTES_WRITE, FLAGS_READ,
        FLAGS_WORK, AUDIT_READ,
    }),
    "duty_clinician": frozenset({
        ORGANISATIONS_READ, OFFERS_READ, PEOPLE_READ, REFERRALS_READ, FLAGS_READ, FLAGS_WORK,
        STEP_UP, NOTES_WRITE, JOURNEYS_WRITE, SHARE_WITHOUT_CONSENT, REFERRALS_REFER,
        CONSENT_WRITE, AUDIT_READ,
    }),
    "peer_worker": frozenset({
        ORGANISATIONS_READ, OFFERS_READ, PEOPLE_READ, ABOUT_ME_WRITE, REFERRALS_READ, NOTES_WRITE,
        FLAGS_RAISE,
    }),
    "vcse_worker": frozenset(_VCSE_WORKER),
    "vcse_manager": frozenset(_VCSE_WORKER | {OFFERS_MANAGE, REFERRALS_ASSIGN}),
    "contract_manager": frozenset({ORGANISATIONS_READ, ALLIANCES_READ, FLOWS_READ, OFFERS_READ}),
    "org_admin": frozenset({
        ORGANISATIONS_READ, ORGANISATION_ADMIN, ALLIANCES_READ, OFFERS_READ, AUDIT_READ,
        METRICS_READ,
    }),
}

# OAuth2 scopes an API client may be granted, and what each allows.
SCOPE_PERMISSIONS: dict[str, frozenset[str]] = {
    "referrals:read": frozenset({ORGANISATIONS_READ, OFFERS_READ, PEOPLE_READ, REFERRALS_READ,
                                 FLAGS_READ}),
    "referrals:write": frozenset({PEOPLE_WRITE, CONSENT_WRITE, JOURNEYS_WRITE, REFERRALS_REFER,
                                  REFERRALS_DECIDE, CONTACTS_WRITE, NOTES_WRITE, FLAGS_RAISE}),
    "offers:write": frozenset({OFFERS_MANAGE, OFFERS_READ}),
    "flows:read": frozenset({FLOWS_READ, ALLIANCES_READ}),
    "admin": frozenset({ORGANISATIONS_READ, ORGANISATION_ADMIN, ALLIANCES_READ, AUDIT_READ,
                        METRICS_READ}),
}
SCOPES = tuple(SCOPE_PERMISSIONS)


def permissions_for_role(role: str) -> frozenset[str]:
    return ROLE_PERMISSIONS.get(role, frozenset())


def permissions_for_scopes(scopes: list[str] | tuple[str, ...]) -> frozenset[str]:
    granted: set[str] = set()
    for scope in scopes:
        granted |= SCOPE_PERMISSIONS.get(scope, frozenset())
    return frozenset(granted)
