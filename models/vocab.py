"""Every controlled vocabulary of DESIGN.md in one place (strings used verbatim in the API)."""

ROLES = (
    "care_coordinator",
    "duty_clinician",
    "peer_worker",
    "vcse_worker",
    "vcse_manager",
    "contract_manager",
    "org_admin",
)
ORGANISATION_KINDS = ("statutory", "vcse")
RESPONSIBILITY_SCOPES = ("statutory-only", "vcse-only", "shared")

CAPACITY = ("capacity", "waitlist", "no-capacity")
OFFER_STATUSES = ("active", "inactive", "defunct", "temporarily closed")

CONSENT_METHODS = ("verbal", "written")
# UK GDPR article 6 lawful bases and article 9 conditions, as short codes.
ART6_BASES = (
    "consent",
    "contract",
    "legal-obligation",
    "vital-interests",
    "public-task",
    "legitimate-interests",
)
ART9_CONDITIONS = (
    "explicit-consent",
    "employment-social-security",
    "vital-interests",
    "not-for-profit-bodies",
    "made-public",
    "legal-claims",
    "substantial-public-interest",
    "health-social-care",
    "public-health",
    "archiving-research",
)
ALTERNATIVE_BASES = ("safeguarding", "vital-interests", "legal-obligation", "public-task")

JOURNEY_STATES = ("planned", "active", "finished", "cancelled")
# Roles of the named people in a journey's MDT, as equals (peer worker includes LXPs).
MDT_ROLES = ("care-coordinator", "peer-worker", "vcse-worker", "statutory-contact", "other")

REFERRAL_STATES = (
    "draft",
    "requested",
    "accepted",
    "rejected",
    "in-progress",
    "on-hold",
    "completed",
    "cancelled",
    "failed",
)
OPEN_REFERRAL_STATES = ("draft", "requested", "accepted", "in-progress", "on-hold")
DECLINE_REASONS = (
    "no-capacity",
    "not-eligible",
    "needs-specialist-support",
    "person-declined",
    "could-not-contact",
    "returned-with-advice",
    "other",
)
CANCEL_REASONS = ("consent-withdrawn", "no-longer-needed", "sent-in-error", "person-declined", "other")
HOLD_REASONS = ("person-unwell", "person-request", "stepped-up", "awaiting-information", "other")
FAIL_REASONS = ("could-not-engage", "could-not-contact", "person-declined", "other")

CONTACT_OUTCOMES = ("attended", "did-not-attend", "could-not-contact")
NOTE_KINDS = ("note", "client-voice")

FLAG_TRIGGERS = (
    "concern",
    "responsibility-gap",
    "declined-needs-specialist",
    "not-answered",
    "no-first-contact",
    "missed-contacts",
    "review-overdue",
    "consent-withdrawn",
    "lawful-basis-review",
)
CONCERN_CATEGORIES = (
    "deterioration",
    "risk-to-self",
    "risk-to-others",
    "safeguarding",
    "physical-health",
    "medication",
    "disengagement",
)
URGENCIES = ("emergency", "urgent", "routine")
FLAG_STATES = ("open", "acknowledged", "resolved")
FLAG_OUTCOMES = ("stepped-up", "advice-given", "re-referred", "no-action", "safeguarding-referral")

# Optional equality-monitoring fields (NHS Data Dictionary codes).
SEX_CODES = ("male", "female", "other", "not-known", "not-stated")
ETHNIC_CATEGORIES = tuple("ABCDEFGHJKLMNPRSZ") + ("99",)

OUTBOX_STATES = ("pending", "sent", "failed")
AUDIT_OUTCOMES = ("allowed", "denied")
