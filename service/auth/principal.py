"""Who is calling: a signed-in user acting in one membership, or an API client."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import g

from models import ApiClient, Membership, User
from service.auth.permissions import permissions_for_role, permissions_for_scopes
from service.errors import Forbidden


@dataclass(frozen=True)
class ClientIdentity:
    """What a bearer request knows of its API client: read on every request, never the secret
    hash (service.auth.tokens)."""

    id: int
    client_id: str
    name: str
    organisation_id: int
    team_id: int | None
    scopes: str


@dataclass(frozen=True)
class Principal:
    user: User | None = None
    client: ApiClient | ClientIdentity | None = None
    membership: Membership | None = None
    scopes: tuple[str, ...] = ()
    permissions: frozenset[str] = field(default_factory=frozenset)
    organisation_kind: str | None = None

    @classmethod
    def for_membership(cls, user: User, membership: Membership | None,
                       organisation_kind: str | None = None) -> Principal:
        perms = permissions_for_role(membership.role) if membership else frozenset()
        return cls(user=user, membership=membership, permissions=perms,
                   organisation_kind=organisation_kind)

    @classmethod
    def for_client(cls, client: ApiClient | ClientIdentity, scopes: list[str],
                   organisation_kind: str | None = None) -> Principal:
        return cls(client=client, scopes=tuple(scopes), permissions=permissions_for_scopes(scopes),
                   organisation_kind=organisation_kind)

    @property
    def role(self) -> str | None:
        return self.membership.role if self.membership else None

    @property
    def organisation_id(self) -> int | None:
        if self.membership:
            return self.membership.organisation_id
        if self.client:
            return self.client.organisation_id
        return None

    @property
    def team_id(self) -> int | None:
        if self.membership:
            return self.membership.team_id
        if self.client:
            return self.client.team_id
        return None

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user else None

    @property
    def client_id(self) -> int | None:
        return self.client.id if self.client else None

    @property
    def actor_key(self) -> str:
        """Stable key for per-caller records such as idempotency keys."""
        return f"user:{self.user.id}" if self.user else f"client:{self.client.id}"

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def require(self, permission: str) -> None:
        if permission not in self.permissions:
            raise Forbidden("You do not have permission to do this.")


def current_principal() -> Principal | None:
    return g.get("principal")
