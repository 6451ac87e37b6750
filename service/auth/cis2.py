"""NHS Care Identity Service 2 (CIS2): assurance level and the selected national RBAC role.

CIS2 is an OIDC provider. With the scopes `nationalrbacaccess` and `selectedrole` it tells
us the roles the person holds (`nhsid_nrbac_roles`: each with `person_roleid`, the ODS
`org_code` and the national `role_code`, e.g. "S8000:G8000:R8001") and which one they chose
for this session (`selected_roleid`). `acr` names the authenticator's assurance level
(e.g. "AAL3_ANY", "AAL2_OR_ABOVE"). Org admins map (ODS code, role code) to a Stepdown
role in Cis2RoleMapping; nothing else grants a CIS2 user access.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import Session, select

from models import Cis2RoleMapping, Organisation
from service.auth.oidc import LoginRefused

ACR_LEVELS = ("AAL1", "AAL2", "AAL3")
_ACR = re.compile(r"^AAL([1-3])(?![0-9])")


def acr_level(acr: object) -> int:
    """AAL1 -> 1 ... AAL3 -> 3 (suffixes like _ANY, _OR_ABOVE allowed); 0 if unknown."""
    if not isinstance(acr, str):
        return 0
    match = _ACR.match(acr.strip().upper())
    return int(match.group(1)) if match else 0


def acr_values(minimum: str) -> str:
    """The `acr_values` to ask CIS2 for: the authenticators at or above the minimum level."""
    return "AAL3_ANY" if acr_level(minimum) >= 3 else "AAL2_OR_AAL3_ANY"


def require_acr(claims: dict, minimum: str) -> None:
    needed = acr_level(minimum) or 2
    if acr_level(claims.get("acr")) < needed:
        raise LoginRefused(
            "cis2-acr-too-low",
            f"The way you signed in is not strong enough for Stepdown. Sign in again with a "
            f"smartcard or another authenticator at level AAL{needed} or above.")


@dataclass(frozen=True)
class SelectedRole:
    role_id: str
    org_code: str
    role_code: str
    role_name: str | None = None


def selected_role(claims: dict) -> SelectedRole:
    """The role the person selected at sign-in, confirmed against their roles claim."""
    roles = claims.get("nhsid_nrbac_roles")
    if not isinstance(roles, list) or not [r for r in roles if isinstance(r, dict)]:
        raise LoginRefused(
            "cis2-no-roles",
            "Your NHS Care Identity account has no roles, so you cannot use Stepdown. "
            "Ask your Registration Authority to give you a role.")
    selected = claims.get("selected_roleid")
    if not selected or not isinstance(selected, str):
        raise LoginRefused(
            "cis2-no-selected-role",
            "No role was selected when you signed in. Sign in again and choose the role "
            "you want to use.")
    for role in roles:
        if isinstance(role, dict) and str(role.get("person_roleid", "")) == selected:
            org_code = str(role.get("org_code") or "").strip().upper()
            role_code = str(role.get("role_code") or "").strip()
            if not org_code or not role_code:
                break
            return SelectedRole(selected, org_code, role_code, role.get("role_name"))
    raise LoginRefused(
        "cis2-selected-role-unknown",
        "The role you selected could not be confirmed. Sign in again and choose a role.")


def _role_code_candidates(role_code: str) -> list[str]:
    """The full national code, then its job role part ("S8000:G8000:R8001" -> "R8001")."""
    candidates = [role_code]
    last = role_code.split(":")[-1]
    if last and last not in candidates:
        candidates.append(last)
    return candidates


def mapping_for(db: Session, role: SelectedRole) -> Cis2RoleMapping:
    organisation = db.exec(
        select(Organisation).where(Organisation.ods_code == role.org_code)).first()
    if organisation is None:
        raise LoginRefused(
            "cis2-ods-not-onboarded",
            f"The organisation of the role you selected (ODS code {role.org_code}) does not "
            f"use Stepdown. Sign in again and choose a role in an organisation that does.")
    for code in _role_code_candidates(role.role_code):
        mapping = db.exec(select(Cis2RoleMapping).where(
            Cis2RoleMapping.ods_code == role.org_code,
            Cis2RoleMapping.role_code == code,
            Cis2RoleMapping.organisation_id == organisation.id,
        )).first()
        if mapping is not None:
            return mapping
    raise LoginRefused(
        "cis2-role-not-mapped",
        f"The role you selected is not set up for Stepdown at {organisation.name}. Ask your "
        f"organisation's Stepdown administrator to set it up, or choose another role.")
