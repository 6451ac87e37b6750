"""Values every page template needs: who I am, my memberships, navigation."""

from __future__ import annotations

from flask import g, url_for

from models import Membership, Organisation
from service.auth.operations import memberships_of
from service.db import get_session

ROLE_NAV = {
    "care_coordinator": [("My caseload", "coordinator.caseload"),
                         ("Find a person", "people_pages.find")],
    "duty_clinician": [("Flags queue", "duty.queue")],
    "peer_worker": [("Caseload", "coordinator.caseload"), ("Find a person", "people_pages.find")],
    "vcse_worker": [("Inbox", "vcse.inbox")],
    "vcse_manager": [("Inbox", "vcse.inbox"), ("Offers", "vcse.offers")],
    "contract_manager": [("Alliance flows", "flows_pages.flows_page")],
    "org_admin": [("Organisation admin", "admin_pages.overview")],
}


class _MembershipView:
    def __init__(self, membership: Membership, organisation: Organisation):
        self.id = membership.id
        self.role = membership.role
        self.organisation = organisation
        self.team_id = membership.team_id


def inject_page_context() -> dict:
    principal = g.get("principal")
    if principal is None or principal.user is None:
        return {"current_user": None}
    db = get_session()
    views = []
    current = None
    for membership in memberships_of(db, principal.user.id):
        view = _MembershipView(membership, db.get(Organisation, membership.organisation_id))
        views.append(view)
        if principal.membership and membership.id == principal.membership.id:
            current = view
    nav = []
    if current is not None:
        for label, endpoint in ROLE_NAV.get(current.role, []):
            nav.append((label, url_for(endpoint)))
    return {
        "current_user": principal.user,
        "current_membership": current,
        "memberships": views,
        "nav_items": nav,
    }
