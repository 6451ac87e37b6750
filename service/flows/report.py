"""The flows report: the page and the PDF share the charts and the figures' layout."""

from __future__ import annotations

import base64

from service.flows import charts
from service.flows.operations import FUNNEL_FIELDS, month_name
from service.reports import render_pdf

FUNNEL_LABELS = {
    "sent": "Sent", "accepted": "Accepted", "first_contact": "First contact",
    "no_first_contact_yet": "Accepted, no first contact yet", "completed": "Completed",
    "in_progress": "Accepted, in progress", "awaiting_decision": "Awaiting decision",
    "declined": "Declined", "withdrawn_before_decision": "Withdrawn before decision",
    "cancelled_after_acceptance": "Cancelled after acceptance", "failed": "Could not engage",
    "waitlisted": "Accepted onto a waiting list",
}
STATUS_LABELS = {"rejected": "Declined", "cancelled": "Cancelled", "failed": "Could not engage"}
EQUALITY_LABELS = {"borough": "Borough", "age_band": "Age band", "sex": "Sex",
                   "ethnic_category": "Ethnic category (NHS code)"}
GROUP_LABELS = {"offer": "Organisation to offer", "organisation": "Organisation to organisation",
                "team": "Team to offer"}


def view_context(report: dict) -> dict:
    units = {u["key"]: u["name"] for u in report["units"]}
    units["*"] = "All"
    refs = {r["key"]: r["name"] for r in report["referrers"]}
    refs["*"] = "All"
    return {
        "report": report,
        "charts": charts.all_charts(report),
        "unit_names": units,
        "referrer_names": refs,
        "funnel_fields": FUNNEL_FIELDS,
        "funnel_labels": FUNNEL_LABELS,
        "status_labels": STATUS_LABELS,
        "equality_labels": EQUALITY_LABELS,
        "group_labels": GROUP_LABELS,
        "month_name": month_name,
    }


def _data_uri(svg: str | None) -> str | None:
    if svg is None:
        return None
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def flows_pdf(report: dict) -> bytes:
    context = view_context(report)
    context["chart_images"] = {k: _data_uri(v) for k, v in context["charts"].items()}
    return render_pdf("reports/flows.html", **context)
