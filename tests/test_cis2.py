"""NHS CIS2 sign-in: assurance level, the selected national RBAC role, and the mapping an
org admin keeps from (ODS code, role code) to a Stepdown membership. Realistic CIS2 ID
tokens (tests/fixtures/oidc_cis2_claims.json) from a local test provider."""

from __future__ import annotations

import pytest
from sqlmodel import select

from models import AuditEvent, Cis2RoleMapping, LoginSession, Membership, User, UserIdentity
from service import create_app
from service.auth.cis2 import acr_level
from tests.fixtures.oidc_provider import (
    CIS2_FIXTURE,
    finish_login,
    oidc_settings,
    run_provider,
    start_login,
)

NAME = "cis2"
LABEL = "NHS Care Identity"
UID = CIS2_FIXTURE["id_token"]["sub"]
NURSE_AT_RXA = "555254240100"  # S8000:G8000:R8001 at RXA (trust-a)
RA_AGENT_AT_RXB = "555254242105"  # S8001:G8005:R8008 at RXB (trust-b, onboarded, not mapped)
NURSE_AT_Y90123 = "555254243112"  # an ODS code that does not use Stepdown
TEAM = "Brent Community Mental Health Team"


@pytest.fixture
def provider():
    with run_provider() as running:
        yield running


@pytest.fixture
def app_config(app_config, provider):
    return {**app_config, **oidc_settings(provider, NAME, LABEL, OIDC_IS_CIS2=True)}


@pytest.fixture
def now(clock) -> int:
    return int(clock.now().timestamp())


@pytest.fixture
def nurse(db, demo, provider) -> User:
    """A user the trust's org admin registered with her CIS2 UID; no membership yet."""
    user = User(email="nora.nurse@demo.stepdown.test", display_name="Nora Nurse")
    db.add(user)
    db.flush()
    db.add(UserIdentity(user_id=user.id, issuer=provider.issuer, subject=UID))
    db.commit()
    provider.userinfo = provider.cis2_userinfo()
    return user


@pytest.fixture
def mapping(db, demo) -> Cis2RoleMapping:
    row = Cis2RoleMapping(organisation_id=demo["organisations"]["trust-a"].id, ods_code="RXA",
                          role_code="S8000:G8000:R8001", team_id=demo["teams"][TEAM].id,
                          role="care_coordinator")
    db.add(row)
    db.commit()
    return row


def sign_in(client, provider, now, **overrides):
    params = start_login(client, NAME)
    nonce = overrides.pop("nonce", params["nonce"])
    provider.issue(provider.cis2_claims(nonce, now, **overrides))
    return finish_login(client, NAME, params["state"])


def memberships(db, user) -> list[Membership]:
    db.expire_all()
    return list(db.exec(select(Membership).where(Membership.user_id == user.id)).all())


def assert_no_session(client, db) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    db.expire_all()
    assert db.exec(select(LoginSession)).all() == []


# --- acceptance ----------------------------------------------------------------------------


def test_cis2_login_asks_for_rbac_scopes_and_a_fresh_role_choice(client, demo, provider):
    params = start_login(client, NAME)
    assert params["scope"].split() == ["openid", "profile", "nationalrbacaccess",
                                       "associatedorgs", "selectedrole"]
    assert params["prompt"] == "login"
    assert params["acr_values"] == "AAL2_OR_AAL3_ANY"  # the default minimum is AAL2


def test_selected_role_maps_to_a_membership(client, provider, nurse, mapping, now, db, demo):
    response = sign_in(client, provider, now)
    assert response.status_code == 302, response.get_data(as_text=True)[:800]
    [membership] = memberships(db, nurse)
    assert membership.organisation_id == demo["organisations"]["trust-a"].id
    assert membership.team_id == demo["teams"][TEAM].id
    assert membership.role == "care_coordinator"
    home = client.get("/", follow_redirects=True)
    assert home.status_code == 200 and "Nora Nurse" in home.get_data(as_text=True)
    db.expire_all()
    session_row = db.exec(select(LoginSession)).one()
    assert session_row.membership_id == membership.id
    events = db.exec(select(AuditEvent).where(AuditEvent.action == f"sign-in:{NAME}")).all()
    assert [(e.actor_user_id, e.actor_role, e.outcome) for e in events] == [
        (nurse.id, "care_coordinator", "allowed")]


def test_signing_in_again_reuses_the_membership(client, provider, nurse, mapping, now, db):
    assert sign_in(client, provider, now).status_code == 302
    client.post("/logout")
    assert sign_in(client, provider, now).status_code == 302
    assert len(memberships(db, nurse)) == 1


def test_roles_may_come_in_the_id_token(client, provider, nurse, mapping, now, db):
    provider.userinfo = {"sub": UID}  # nothing from userinfo
    roles = CIS2_FIXTURE["userinfo"]["nhsid_nrbac_roles"]
    assert sign_in(client, provider, now, nhsid_nrbac_roles=roles).status_code == 302
    assert len(memberships(db, nurse)) == 1


def test_a_mapping_by_job_role_code_is_enough(client, provider, nurse, now, db, demo):
    db.add(Cis2RoleMapping(organisation_id=demo["organisations"]["trust-a"].id, ods_code="RXA",
                           role_code="R8001", role="peer_worker"))
    db.commit()
    assert sign_in(client, provider, now).status_code == 302
    assert [m.role for m in memberships(db, nurse)] == ["peer_worker"]


@pytest.mark.parametrize("acr", ["AAL2_OR_ABOVE", "AAL2_ANY", "AAL3_ANY"])
def test_aal2_and_above_are_accepted_by_default(client, provider, nurse, mapping, now, acr):
    assert sign_in(client, provider, now, acr=acr).status_code == 302


def test_a_higher_minimum_refuses_aal2(app_config, db_engine, provider, nurse, mapping, now, db):
    app = create_app(dict(app_config, OIDC_ACR_MIN="AAL3"))
    try:
        client = app.test_client()
        response = sign_in(client, provider, now, acr="AAL2_OR_ABOVE")
        assert response.status_code == 403
        assert "AAL3" in response.get_data(as_text=True)
        assert sign_in(client, provider, now, acr="AAL3_ANY").status_code == 302
    finally:
        app.extensions["stepdown.engine"].dispose()


def test_acr_levels_are_ordered():
    assert acr_level("AAL1_USERPASS") < acr_level("AAL2_OR_ABOVE") < acr_level("AAL3_ANY")
    assert acr_level(None) == acr_level("") == acr_level("AAL22") == acr_level(3) == 0


# --- refusals ------------------------------------------------------------------------------

WRONG = {"iss": "https://am.nhsint.auth-ptl.cis2.spineservices.nhs.uk.evil.example"}
REFUSALS = [
    # (case, ID-token overrides, userinfo overrides, audit reason, status, words on the page)
    ("missing selected_roleid", {"selected_roleid": None}, {}, "cis2-no-selected-role", 403,
     "No role was selected"),
    ("selected role not in roles", {"selected_roleid": "555000000999"}, {},
     "cis2-selected-role-unknown", 403, "could not be confirmed"),
    ("no roles", {}, {"nhsid_nrbac_roles": []}, "cis2-no-roles", 403, "has no roles"),
    ("roles claim missing", {}, {"nhsid_nrbac_roles": None}, "cis2-no-roles", 403,
     "has no roles"),
    ("userinfo for another person", {}, {"sub": "910000000999"}, "cis2-no-roles", 403,
     "has no roles"),
    ("ODS code not onboarded", {"selected_roleid": NURSE_AT_Y90123}, {},
     "cis2-ods-not-onboarded", 403, "ODS code Y90123"),
    ("role not mapped", {"selected_roleid": RA_AGENT_AT_RXB}, {}, "cis2-role-not-mapped", 403,
     "not set up for Stepdown"),
    ("acr too low", {"acr": "AAL1_USERPASS"}, {}, "cis2-acr-too-low", 403, "not strong enough"),
    ("acr missing", {"acr": None}, {}, "cis2-acr-too-low", 403, "not strong enough"),
    ("wrong issuer", WRONG, {}, "id-token-iss", 401, "could not confirm"),
    ("wrong audience", {"aud": "999999999999.apps.national"}, {}, "id-token-aud", 401,
     "could not confirm"),
    ("wrong nonce", {"nonce": "nonce-from-another-login"}, {}, "id-token-nonce", 401,
     "could not confirm"),
    ("expired", {"exp": "EXPIRED"}, {}, "id-token-expired", 401, "could not confirm"),
]


@pytest.mark.parametrize("case, claims, userinfo, reason, status, words", REFUSALS,
                         ids=[r[0] for r in REFUSALS])
def test_refused_sign_ins(client, provider, nurse, mapping, now, db, case, claims, userinfo,
                          reason, status, words):
    claims = dict(claims)
    if claims.get("exp") == "EXPIRED":
        claims.update(iat=now - 3600, auth_time=now - 3600, exp=now - 600)
    provider.userinfo = provider.cis2_userinfo(**userinfo)
    response = sign_in(client, provider, now, **claims)
    page = response.get_data(as_text=True)
    assert response.status_code == status, page[:800]
    assert "You cannot sign in" in page and words in page
    db.expire_all()
    denied = db.exec(select(AuditEvent).where(AuditEvent.outcome == "denied")).all()
    assert [e.action for e in denied] == [f"sign-in:{reason}"]
    if reason.startswith("cis2-") and reason != "cis2-acr-too-low":
        assert denied[0].actor_user_id == nurse.id  # the person was known; the role was not
    assert memberships(db, nurse) == []  # nothing granted
    assert_no_session(client, db)


def test_unregistered_cis2_user_is_refused(client, provider, demo, mapping, now, db):
    """A valid smartcard and a mapped role are not enough without a registered identity."""
    before = len(db.exec(select(Membership)).all())
    provider.userinfo = provider.cis2_userinfo()
    response = sign_in(client, provider, now)
    assert response.status_code == 403
    assert "not linked to Stepdown" in response.get_data(as_text=True)
    db.expire_all()
    assert len(db.exec(select(Membership)).all()) == before
    assert_no_session(client, db)
