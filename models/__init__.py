"""SQLModel tables and pure domain rules. Imports nothing from `service`."""

from models.audit import AuditEvent
from models.base import metadata
from models.flags import Flag, FlagEvent
from models.flows import FlowDay, FlowMonth, ReferralFlow
from models.journeys import Journey, JourneyMember
from models.offers import Offer, OfferArea, OfferCapacityChange, OfferResponsibility
from models.organisations import (
    Alliance,
    AllianceManager,
    AllianceMember,
    ApiClient,
    Cis2RoleMapping,
    LoginSession,
    Membership,
    Organisation,
    OrganisationResponsibility,
    Responsibility,
    Team,
    User,
    UserIdentity,
)
from models.outbox import IdempotencyRecord, OutboxMessage, WebhookSubscription
from models.people import Consent, Person, PersonNeed
from models.referrals import Contact, Note, Referral, ReferralEvent

__all__ = [
    "Alliance",
    "AllianceManager",
    "AllianceMember",
    "ApiClient",
    "AuditEvent",
    "Cis2RoleMapping",
    "Consent",
    "Contact",
    "Flag",
    "FlagEvent",
    "FlowDay",
    "FlowMonth",
    "IdempotencyRecord",
    "Journey",
    "JourneyMember",
    "LoginSession",
    "Membership",
    "Note",
    "Offer",
    "OfferArea",
    "OfferCapacityChange",
    "OfferResponsibility",
    "Organisation",
    "OrganisationResponsibility",
    "OutboxMessage",
    "Person",
    "PersonNeed",
    "Referral",
    "ReferralEvent",
    "ReferralFlow",
    "Responsibility",
    "Team",
    "User",
    "UserIdentity",
    "WebhookSubscription",
    "metadata",
]
