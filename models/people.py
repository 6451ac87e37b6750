"""The person, their recorded needs, and their consents."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import in_list
from models.types import UTCDateTime, utcnow
from models.vocab import ART6_BASES, ART9_CONDITIONS, CONSENT_METHODS, ETHNIC_CATEGORIES, SEX_CODES


class Person(SQLModel, table=True):
    __tablename__ = "person"
    __table_args__ = (
        sa.CheckConstraint("length(nhs_number) = 10", name="nhs_number_length"),
        sa.CheckConstraint(f"sex IS NULL OR {in_list('sex', SEX_CODES)}", name="sex"),
        sa.CheckConstraint(
            f"ethnic_category IS NULL OR {in_list('ethnic_category', ETHNIC_CATEGORIES)}",
            name="ethnic_category",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    nhs_number: str = Field(max_length=10, unique=True)  # normalised: 10 digits
    given_name: str = Field(max_length=100)
    family_name: str = Field(max_length=100)
    preferred_name: str | None = Field(default=None, max_length=100)
    pronouns: str | None = Field(default=None, max_length=50)
    date_of_birth: date
    postcode_district: str | None = Field(default=None, max_length=8)
    borough: str | None = Field(default=None, max_length=100)
    communication_needs: str | None = Field(default=None, max_length=2000)
    sex: str | None = Field(default=None, max_length=20)
    ethnic_category: str | None = Field(default=None, max_length=2)
    # About me: in the person's own words.
    about_strengths: str | None = Field(default=None, max_length=4000)
    about_what_matters: str | None = Field(default=None, max_length=4000)
    about_what_helps: str | None = Field(default=None, max_length=4000)
    about_updated_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    about_updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_by_organisation_id: int | None = Field(default=None, foreign_key="organisation.id")
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PersonNeed(SQLModel, table=True):
    """A responsibility the person's recorded needs include."""

    __tablename__ = "person_need"

    person_id: int = Field(foreign_key="person.id", primary_key=True)
    responsibility_code: str = Field(foreign_key="responsibility.code", primary_key=True)


class Consent(SQLModel, table=True):
    """The person's agreement to share with a named organisation for a purpose."""

    __tablename__ = "consent"
    __table_args__ = (
        sa.CheckConstraint(in_list("method", CONSENT_METHODS), name="method"),
        sa.CheckConstraint(in_list("lawful_basis", ART6_BASES), name="lawful_basis"),
        sa.CheckConstraint(in_list("condition", ART9_CONDITIONS), name="condition"),
        sa.CheckConstraint("expires_at IS NULL OR expires_at > given_at", name="expiry_after_given"),
        sa.Index("ix_consent_person_org", "person_id", "organisation_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id")
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    purpose: str = Field(max_length=500)
    lawful_basis: str = Field(max_length=30)  # UK GDPR article 6
    condition: str = Field(max_length=40)  # UK GDPR article 9
    method: str = Field(max_length=10)
    recorded_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    given_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    withdrawn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    withdrawn_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    withdrawal_reason: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    def status(self, now: datetime) -> str:
        if self.withdrawn_at is not None:
            return "withdrawn"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"
