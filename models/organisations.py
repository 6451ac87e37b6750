"""Organisations, teams, alliances, the responsibility map, users and API clients."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import in_list
from models.types import UTCDateTime, utcnow
from models.vocab import ORGANISATION_KINDS, RESPONSIBILITY_SCOPES, ROLES


class Organisation(SQLModel, table=True):
    __tablename__ = "organisation"
    __table_args__ = (
        sa.CheckConstraint(in_list("kind", ORGANISATION_KINDS), name="kind"),
        # A statutory body is identified by its ODS code; a VCSE by charity or company number.
        sa.CheckConstraint(
            "(kind = 'statutory' AND ods_code IS NOT NULL) OR "
            "(kind = 'vcse' AND (charity_number IS NOT NULL OR company_number IS NOT NULL))",
            name="identifier",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)
    name: str = Field(max_length=200)
    ods_code: str | None = Field(default=None, max_length=10, unique=True)
    charity_number: str | None = Field(default=None, max_length=20)
    company_number: str | None = Field(default=None, max_length=20)
    borough: str | None = Field(default=None, max_length=100)
    safeguarding_team_id: int | None = Field(
        default=None, sa_column_kwargs={"nullable": True}
    )  # the safeguarding lead's team; no FK to avoid a cycle with team
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Team(SQLModel, table=True):
    __tablename__ = "team"
    __table_args__ = (sa.UniqueConstraint("organisation_id", "name", name="uq_team_org_name"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=320)  # the team's shared inbox
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Alliance(SQLModel, table=True):
    __tablename__ = "alliance"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    description: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AllianceMember(SQLModel, table=True):
    __tablename__ = "alliance_member"

    alliance_id: int = Field(foreign_key="alliance.id", primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", primary_key=True)


class AllianceManager(SQLModel, table=True):
    """A contract manager of an alliance (sees its aggregate flows only)."""

    __tablename__ = "alliance_manager"

    alliance_id: int = Field(foreign_key="alliance.id", primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", primary_key=True)


class Responsibility(SQLModel, table=True):
    __tablename__ = "responsibility"
    __table_args__ = (sa.CheckConstraint(in_list("scope", RESPONSIBILITY_SCOPES), name="scope"),)

    code: str = Field(primary_key=True, max_length=60)
    name: str = Field(max_length=200)
    scope: str = Field(max_length=20)
    description: str | None = Field(default=None, max_length=1000)


class OrganisationResponsibility(SQLModel, table=True):
    __tablename__ = "organisation_responsibility"

    organisation_id: int = Field(foreign_key="organisation.id", primary_key=True)
    responsibility_code: str = Field(foreign_key="responsibility.code", primary_key=True)


class User(SQLModel, table=True):
    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)  # stored lower-case
    display_name: str = Field(max_length=200)
    password_hash: str | None = Field(default=None, max_length=300)
    is_active: bool = Field(default=True)
    failed_logins: int = Field(default=0)
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class UserIdentity(SQLModel, table=True):
    """An OIDC identity (issuer, subject) an org admin registered for a user."""

    __tablename__ = "user_identity"
    __table_args__ = (sa.UniqueConstraint("issuer", "subject", name="uq_user_identity_iss_sub"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    issuer: str = Field(max_length=500)
    subject: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Membership(SQLModel, table=True):
    """A user holding one role in one organisation (optionally one team)."""

    __tablename__ = "membership"
    __table_args__ = (
        sa.CheckConstraint(in_list("role", ROLES), name="role"),
        sa.UniqueConstraint(
            "user_id", "organisation_id", "team_id", "role", name="uq_membership_user_org_team_role"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    team_id: int | None = Field(default=None, foreign_key="team.id", index=True)
    role: str = Field(max_length=30)
    is_team_manager: bool = Field(default=False)  # receives escalations
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class LoginSession(SQLModel, table=True):
    """A server-side browser session; the cookie holds only a random token."""

    __tablename__ = "login_session"

    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    membership_id: int | None = Field(default=None, foreign_key="membership.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApiClient(SQLModel, table=True):
    """A machine client using the OAuth2 client-credentials grant."""

    __tablename__ = "api_client"

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(max_length=100, unique=True)
    name: str = Field(max_length=200)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    team_id: int | None = Field(default=None, foreign_key="team.id")
    secret_hash: str = Field(max_length=300)
    scopes: str = Field(default="", max_length=1000)  # space separated
    is_active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Cis2RoleMapping(SQLModel, table=True):
    """Maps an NHS CIS2 (ODS org code, national role code) to a Stepdown membership role."""

    __tablename__ = "cis2_role_mapping"
    __table_args__ = (
        sa.CheckConstraint(in_list("role", ROLES), name="role"),
        sa.UniqueConstraint("ods_code", "role_code", name="uq_cis2_role_mapping_ods_role"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    ods_code: str = Field(max_length=10)
    role_code: str = Field(max_length=30)
    team_id: int | None = Field(default=None, foreign_key="team.id")
    role: str = Field(max_length=30)
