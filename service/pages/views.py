"""Pages: the landing page for each role."""

from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, url_for

from service.auth.access import requires

bp = Blueprint("pages", __name__)
# Roles whose home is their team's caseload (service/pages/coordinator.py).
CASELOAD_ROLES = ("care_coordinator", "peer_worker")
# Roles whose home is their inbox (service/pages/vcse.py) or flags queue (service/pages/duty.py).
INBOX_ROLES = ("vcse_worker", "vcse_manager")
QUEUE_ROLES = ("duty_clinician",)


@bp.get("/")
@requires()
def home():
    principal = g.principal
    if principal.role in CASELOAD_ROLES and principal.organisation_kind == "statutory":
        return redirect(url_for("coordinator.caseload"))
    if principal.role in INBOX_ROLES and principal.organisation_kind == "vcse":
        return redirect(url_for("vcse.inbox"))
    if principal.role in QUEUE_ROLES and principal.organisation_kind == "statutory":
        return redirect(url_for("duty.queue"))
    if principal.role == "org_admin":
        return redirect(url_for("admin_pages.overview"))
    if principal.role == "contract_manager":
        return redirect(url_for("flows_pages.flows_page"))
    return render_template("pages/home.html", principal=g.principal)


def register(app, api) -> None:  # noqa: ARG001
    app.register_blueprint(bp)
