"""Alliance flows for contract managers: aggregate figures only, never a person.

`get_flows` checks the permission and the alliance scope, runs the SQL of
service.flows.queries (all counting, totals, medians and percentiles happen there),
registers every count with the lines that tie the counts together and protects them all
at once (service.flows.disclosure), then lays the published figures out for the API, the
CSV, the page and the PDF. The same published figures feed all four, so what a contract
manager can work out is the same whichever way they look.

Definitions (also in the report's method notes, `METHOD_NOTES`):
- a referral belongs to a period by the London date it was sent; it counts when both the
  referring team's organisation and the receiving organisation are alliance members;
- outcomes are the referral's status at the time the report is made;
- decision = accepted or declined (`decided_at`); first contact = the first contact
  recorded as `attended`; times are in England working days, worked out for each referral
  when it changes (models.flows, kept by service.flows.facts);
- safety net: journeys of the alliance's teams discharged in the period, stepped up within
  90 days of discharge;
- flags: flags raised in the period on journeys of the alliance's teams; acknowledged within
  target when acknowledged (or resolved) by `acknowledgement_due`;
- capacity: days each offer spent at each capacity in the period, from its capacity changes
  (models.offers.OfferCapacityChange).
"""

from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlmodel import Session, select

from models import Alliance, AllianceManager, AllianceMember, Offer, Organisation, Team
from models.flows import ACCEPTED_OUTCOMES, AGE_BANDS, FLOW_OUTCOMES, NOT_RECORDED
from models.vocab import (
    CANCEL_REASONS,
    CAPACITY,
    DECLINE_REASONS,
    FAIL_REASONS,
    FLAG_TRIGGERS,
    URGENCIES,
)
from service import clock
from service.auth import permissions as perm
from service.auth.principal import Principal
from service.errors import Invalid, NotFound
from service.flows import queries
from service.flows.calendar import LONDON
from service.flows.disclosure import LEGEND, THRESHOLD, Register, change, share, statistic
from service.flows.facts import apply_pending_counts, refresh_stale_flows
from service.flows.queries import ALL, GROUPS, Window

MAX_PERIOD_DAYS = 366
OUTCOMES = FLOW_OUTCOMES
CLOSED_REASONS = {"rejected": DECLINE_REASONS, "cancelled": CANCEL_REASONS, "failed": FAIL_REASONS}
EQUALITY = ("borough", "age_band", "sex", "ethnic_category")
ACK_STATES = ("within", "late", "pending")
PERIODS = ("current", "previous")

METHOD_NOTES = (
    "Referrals count in the period in which they were sent (London date), when both the "
    "referring and the receiving organisation belong to the alliance.",
    "Outcomes, first contacts and acknowledgements are as recorded when the report was made; "
    "the most recent weeks of a period have had less time to progress.",
    "Times are England working days (weekends and bank holidays excluded): from sending to "
    "the decision (accepted or declined), and from acceptance to the first contact recorded "
    "as attended. Medians and 90th percentiles interpolate like PostgreSQL percentile_cont.",
    "Answered within target: decided within the offer's response target in working days.",
    "Safety net: journeys discharged from statutory care in the period that were stepped up "
    "within 90 days of discharge.",
    "Flags are acknowledged within target when acknowledged (or resolved) by their due time: "
    "emergency 1 hour, urgent 4 working hours, routine 2 working days. Pending flags are not "
    "yet due.",
    "Counts are of referrals, not people: a person referred twice counts twice. "
    "Age is at the date the referral was sent; borough, sex and ethnic category are as "
    "recorded for the person now.",
    "Days at each capacity come from the offer's recorded capacity changes; days before its "
    "first record are not recorded. The current period counts up to when the report was made.",
)
SUPPRESSION_NOTES = (
    f"Counts from 1 to {THRESHOLD - 1} are shown as <{THRESHOLD}. Zero is shown.",
    "Where a total or another figure would let a hidden count be worked out, further counts "
    "are hidden and shown as *.",
    "Percentages and changes are shown only when every count they use is shown; medians and "
    f"90th percentiles only when they describe at least {THRESHOLD} referrals.",
)


# -- scope and parameters --------------------------------------------------------------

def managed_alliances(db: Session, actor: Principal) -> list[Alliance]:
    actor.require(perm.FLOWS_READ)
    if actor.user_id is None:
        return []
    return list(db.exec(
        select(Alliance).join(AllianceManager, AllianceManager.alliance_id == Alliance.id)
        .where(AllianceManager.user_id == actor.user_id).order_by(Alliance.name)).all())


def _alliance_in_scope(db: Session, actor: Principal, alliance_id: int | None) -> Alliance:
    alliances = managed_alliances(db, actor)
    if alliance_id is None:
        if len(alliances) == 1:
            return alliances[0]
        if not alliances:
            raise NotFound("No alliance found.")
        raise Invalid("Choose an alliance.", errors={"alliance": ["Choose an alliance."]})
    for alliance in alliances:
        if alliance.id == alliance_id:
            return alliance
    raise NotFound("No alliance found.")


def last_full_quarter(today: date) -> tuple[date, date]:
    quarter_start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    end = quarter_start - timedelta(days=1)
    start = date(end.year, 3 * ((end.month - 1) // 3) + 1, 1)
    return start, end


def previous_period(start: date, end: date) -> tuple[date, date]:
    """The period of the same length just before: a whole quarter for a quarter."""
    if start.day == 1 and (end + timedelta(days=1)).day == 1:
        months = (end.year - start.year) * 12 + end.month - start.month + 1
        month_index = start.year * 12 + start.month - 1 - months
        prev_start = date(month_index // 12, month_index % 12 + 1, 1)
        return prev_start, start - timedelta(days=1)
    length = (end - start).days + 1
    return start - timedelta(days=length), start - timedelta(days=1)


def make_window(alliance_id: int, date_from: date | None, date_to: date | None,
                group: str | None, as_of: datetime) -> Window:
    today = as_of.astimezone(LONDON).date()
    errors: dict[str, list[str]] = {}
    group = group or "offer"
    if group not in GROUPS:
        errors["group"] = [f"Group by one of: {', '.join(GROUPS)}."]
    if date_from is None and date_to is None:
        date_from, date_to = last_full_quarter(today)
    elif date_from is None or date_to is None:
        errors["from" if date_from is None else "to"] = ["Enter both dates of the period."]
    if date_from and date_to:
        if date_to < date_from:
            errors["to"] = ["The end date must be the same as or after the start date."]
        elif (date_to - date_from).days + 1 > MAX_PERIOD_DAYS:
            errors["to"] = [f"The period must be {MAX_PERIOD_DAYS} days or shorter."]
        elif date_from.year < 2000:
            errors["from"] = ["The start date must be in 2000 or later."]
    if errors:
        raise Invalid("Check the period and grouping.", errors=errors)
    return Window(alliance_id=alliance_id, group=group, current=(date_from, date_to),
                  previous=previous_period(date_from, date_to), as_of=as_of)


# -- labels ----------------------------------------------------------------------------

def _labels(db: Session, window: Window) -> tuple[dict[str, str], dict[str, str], list[dict]]:
    members = select(AllianceMember.organisation_id).where(
        AllianceMember.alliance_id == window.alliance_id)
    orgs = {o.id: o for o in db.exec(select(Organisation).where(Organisation.id.in_(members)))}
    teams = db.exec(select(Team).where(Team.organisation_id.in_(members))).all()
    offers = db.exec(select(Offer).where(Offer.organisation_id.in_(members))
                     .order_by(Offer.name)).all()
    if window.group == "team":
        referrers = {str(t.id): f"{t.name} ({orgs[t.organisation_id].name})" for t in teams}
    else:
        referrers = {str(o.id): o.name for o in orgs.values()}
    if window.group == "organisation":
        units = {str(o.id): o.name for o in orgs.values()}
    else:
        units = {str(o.id): f"{o.name} ({orgs[o.organisation_id].name})" for o in offers}
    capacity = [{
        "offer": str(o.id), "name": o.name, "organisation": orgs[o.organisation_id].name,
        "status": o.status, "capacity": o.capacity, "waitlist_weeks": o.waitlist_weeks,
        "response_target_days": o.response_target_days,
    } for o in offers]
    return referrers, units, capacity


# -- registering the counts ------------------------------------------------------------

@dataclass
class _Counts:
    rows: dict[tuple, int]
    reg: Register

    def key(self, period: str, measure: str, a: str = "", b: str = "", c: str = "") -> tuple:
        key = (period, measure, a, b, c)
        self.reg.add(key, self.rows.get(key, 0))
        return key


def _present(rows: dict[tuple, int], measure: str, position: int) -> list[str]:
    """Values seen in position 2 (a), 3 (b) or 4 (c) of `measure`, totals excluded."""
    return sorted({k[position] for k in rows if k[1] == measure and k[position] != ALL})


def _ordered(seen: list[str], preferred: tuple[str, ...]) -> list[str]:
    return [v for v in preferred if v in seen] + sorted(v for v in seen if v not in preferred)


def _register(counts: _Counts, period: str, refs: list[str], units: list[str],
              dims: dict[str, list[str]]) -> None:
    k = counts.key
    tot = counts.reg.total
    eq = counts.reg.equal
    # Flow matrix with its totals.
    for r in refs:
        tot(k(period, "sent", r, ALL), [k(period, "sent", r, u) for u in units])
    for u in units:
        tot(k(period, "sent", ALL, u), [k(period, "sent", r, u) for r in refs])
    grand = k(period, "sent", ALL, ALL)
    tot(grand, [k(period, "sent", r, ALL) for r in refs])
    tot(grand, [k(period, "sent", ALL, u) for u in units])
    # Funnel, times' counts and reasons per unit and for all units.
    for u in [*units, ALL]:
        sent = k(period, "sent", ALL, u)
        outcome = {o: k(period, "outcome", u, o) for o in OUTCOMES}
        tot(sent, outcome.values())
        accepted = k(period, "decision", u, "accepted")
        tot(accepted, [outcome[o] for o in ACCEPTED_OUTCOMES])
        tot(accepted, [k(period, "contact", u, c) for c in ("contacted", "not-contacted")])
        tot(accepted, [k(period, "waitlist", u, w) for w in ("waitlist", "no-waitlist")])
        eq([k(period, "target", u, t) for t in ("within", "outside")],
           [accepted, outcome["declined"]])
        for status in CLOSED_REASONS:
            reasons = [k(period, "reason", u, status, c) for c in dims[f"reason:{status}"]]
            closed = {"rejected": [outcome["declined"]],
                      "cancelled": [outcome["withdrawn"], outcome["cancelled-after-acceptance"]],
                      "failed": [outcome["failed"]]}[status]
            eq(closed, reasons)
    for measure, bs, cs in (
        ("outcome", OUTCOMES, [""]), ("decision", ("accepted",), [""]),
        ("contact", ("contacted", "not-contacted"), [""]),
        ("waitlist", ("waitlist", "no-waitlist"), [""]), ("target", ("within", "outside"), [""]),
    ):
        for b in bs:
            for c in cs:
                tot(k(period, measure, ALL, b, c), [k(period, measure, u, b, c) for u in units])
    for status in CLOSED_REASONS:
        for code in dims[f"reason:{status}"]:
            tot(k(period, "reason", ALL, status, code),
                [k(period, "reason", u, status, code) for u in units])
    # Equality tables: value x accepted / not accepted, tied to the funnel's totals.
    accepted_all = k(period, "decision", ALL, "accepted")
    for dim in EQUALITY:
        measure = f"eq:{dim}"
        values = dims[measure]
        cols = ("accepted", "not-accepted")
        for v in values:
            tot(k(period, measure, v, ALL), [k(period, measure, v, c) for c in cols])
        for c in cols:
            tot(k(period, measure, ALL, c), [k(period, measure, v, c) for v in values])
        eq_grand = k(period, measure, ALL, ALL)
        tot(eq_grand, [k(period, measure, v, ALL) for v in values])
        tot(eq_grand, [k(period, measure, ALL, c) for c in cols])
        eq([eq_grand], [grand])
        eq([k(period, measure, ALL, "accepted")], [accepted_all])
    # Trend by month.
    months = dims[f"month:{period}"]
    tot(grand, [k(period, "month", m) for m in months])
    # Safety net.
    groups = dims["safety-net"]
    sn_cols = ("stepped-up", "not-stepped-up")
    for g in groups:
        tot(k(period, "safety-net", g, ALL), [k(period, "safety-net", g, c) for c in sn_cols])
    for c in sn_cols:
        tot(k(period, "safety-net", ALL, c), [k(period, "safety-net", g, c) for g in groups])
    sn_all = k(period, "safety-net", ALL, ALL)
    tot(sn_all, [k(period, "safety-net", g, ALL) for g in groups])
    tot(sn_all, [k(period, "safety-net", ALL, c) for c in sn_cols])
    # Flags by trigger x urgency, and acknowledgement per urgency.
    triggers = dims["flags"]
    for t in triggers:
        tot(k(period, "flags", t, ALL), [k(period, "flags", t, u) for u in URGENCIES])
    for u in URGENCIES:
        tot(k(period, "flags", ALL, u), [k(period, "flags", t, u) for t in triggers])
        tot(k(period, "flags", ALL, u), [k(period, "ack", u, s) for s in ACK_STATES])
    flags_all = k(period, "flags", ALL, ALL)
    tot(flags_all, [k(period, "flags", t, ALL) for t in triggers])
    tot(flags_all, [k(period, "flags", ALL, u) for u in URGENCIES])
    for s in ACK_STATES:
        tot(k(period, "ack", ALL, s), [k(period, "ack", u, s) for u in URGENCIES])
    tot(flags_all, [k(period, "ack", ALL, s) for s in ACK_STATES])


# -- laying out the published figures ---------------------------------------------------

class _Layout:
    def __init__(self, counts: _Counts, times: dict[tuple, tuple]):
        self.counts = counts
        self.times = times
        self.tidy: list[dict] = []

    def fig(self, measure: str, a: str = "", b: str = "", c: str = "") -> dict:
        reg = self.counts.reg
        values = {}
        for period in PERIODS:
            key = (period, measure, a, b, c)
            values[period] = reg.publish(key) if key in reg else 0
        values["change"] = change(values["current"], values["previous"])
        return values

    def pct(self, num: dict, den: list[dict]) -> dict:
        out = {}
        for period in PERIODS:
            parts = [d[period] for d in den]
            if all(isinstance(p, int) for p in parts):
                out[period] = share(num[period], sum(parts))
            else:
                out[period] = None
        return out

    def stat(self, measure: str, unit: str, count: dict) -> dict:
        out = {}
        for name in ("median", "p90"):
            out[name] = {}
            for period in PERIODS:
                found = self.times.get((measure, period, unit))
                value = None if found is None else (found[1] if name == "median" else found[2])
                out[name][period] = statistic(value, count[period])
        return out


def _tidy_rows(report: dict) -> list[dict]:
    """One row per published cell: section, measure, row, column, period, value."""
    rows: list[dict] = []
    units = {u["key"]: u["name"] for u in report["units"]}
    units[ALL] = "All"
    refs = {r["key"]: r["name"] for r in report["referrers"]}
    refs[ALL] = "All"

    def add(section, measure, row, column, fig, periods=PERIODS):
        for period in periods:
            if period in fig:
                rows.append({"section": section, "measure": measure, "row": row,
                             "column": column, "period": period, "value": fig[period]})

    m = report["flow_matrix"]
    for cell in m["cells"]:
        add("flow_matrix", "sent", refs[cell["referrer"]], units[cell["unit"]], cell)
    for cell in m["referrer_totals"]:
        add("flow_matrix", "sent", refs[cell["referrer"]], "All", cell)
    for cell in m["unit_totals"]:
        add("flow_matrix", "sent", "All", units[cell["unit"]], cell)
    add("flow_matrix", "sent", "All", "All", m["total"])
    for f in report["funnel"]:
        for stage in FUNNEL_FIELDS:
            add("funnel", stage, units[f["unit"]], "", f[stage])
        for r in f["reasons"]:
            add("funnel", f"reason:{r['status']}", units[f["unit"]], r["reason"], r)
    for t in report["times"]:
        row = units[t["unit"]]
        for measure in ("decision_days", "first_contact_days"):
            for stat in ("median", "p90"):
                add("times", f"{measure}_{stat}", row, "", t[measure][stat])
        add("times", "within_target", row, "", t["within_target"])
        add("times", "outside_target", row, "", t["outside_target"])
        add("times", "within_target_percent", row, "", t["within_target_percent"])
    sn = report["safety_net"]
    for g in [*sn["groups"], sn["total"]]:
        name = refs.get(g["group"], g["group"])
        for measure in ("discharged", "stepped_up", "not_stepped_up", "stepped_up_percent"):
            add("safety_net", measure, name, "", g[measure])
    fl = report["flags"]
    for cell in fl["cells"]:
        add("flags", "raised", cell["trigger"], cell["urgency"], cell)
    for cell in fl["trigger_totals"]:
        add("flags", "raised", cell["trigger"], "All", cell)
    for cell in fl["urgency_totals"]:
        add("flags", "raised", "All", cell["urgency"], cell)
    add("flags", "raised", "All", "All", fl["total"])
    for a in fl["acknowledgement"]:
        for measure in ("within", "late", "pending", "within_percent"):
            add("flags", f"acknowledged_{measure}", a["urgency"], "", a[measure])
    for dim, table in report["equality"].items():
        for row in table["rows"]:
            for measure in ("sent", "accepted", "not_accepted"):
                add("equality", measure, f"{dim}:{row['value']}", "", row[measure])
    for period in PERIODS:
        for point in report["trend"][period]:
            add("trend", "sent", point["month"], "", {period: point["value"]}, (period,))
    for offer in report["capacity"]:
        for status, by_period in offer["days"].items():
            add("capacity", f"days:{status}", offer["name"], "", by_period)
        if offer["waitlisted"] is None:
            continue
        rows.append({"section": "capacity", "measure": "waitlisted", "row": offer["name"],
                     "column": "", "period": "current", "value": offer["waitlisted"]["current"]})
    return rows


FUNNEL_FIELDS = ("sent", "accepted", "first_contact", "no_first_contact_yet", "completed",
                 "in_progress", "awaiting_decision", "declined", "withdrawn_before_decision",
                 "cancelled_after_acceptance", "failed", "waitlisted")


def build_report(db: Session, window: Window, alliance: Alliance,
                 percentile: str | None = None, suppress: bool = True) -> dict:
    """All figures of one alliance for the window, suppressed and laid out (no scope check)."""
    raw = queries.run_counts(db, window)
    rows = {(p, m, a, b, c): n for m, p, a, b, c, n in raw}
    times = {(m, p, u): (n, med, p90) for m, p, u, n, med, p90 in queries.run_times(
        db, window, percentile)}
    referrers, unit_names, capacity = _labels(db, window)

    refs = sorted(set(_present(rows, "sent", 2)) | set(_present(rows, "safety-net", 2)),
                  key=lambda r: referrers.get(r, r))
    units = sorted(_present(rows, "sent", 3), key=lambda u: unit_names.get(u, u))
    dims: dict[str, list[str]] = {}
    for status, codes in CLOSED_REASONS.items():
        seen = sorted({k[4] for k in rows if k[1] == "reason" and k[3] == status
                       and k[4] != ALL})
        dims[f"reason:{status}"] = _ordered(seen, codes)
    preferred = {"age_band": AGE_BANDS}
    for dim in EQUALITY:
        seen = _present(rows, f"eq:{dim}", 2)
        dims[f"eq:{dim}"] = _ordered(
            [v for v in seen if v != NOT_RECORDED], preferred.get(dim, ())) + (
            [NOT_RECORDED] if NOT_RECORDED in seen else [])
    for period in PERIODS:
        dims[f"month:{period}"] = _months(window.current if period == "current"
                                          else window.previous)
    dims["safety-net"] = _present(rows, "safety-net", 2)
    dims["flags"] = _ordered(_present(rows, "flags", 2), FLAG_TRIGGERS)

    counts = _Counts(rows, Register(suppress=suppress))
    for period in PERIODS:
        _register(counts, period, refs, units, dims)
    lay = _Layout(counts, times)
    f = lay.fig

    report: dict = {
        "alliance": {"id": alliance.id, "name": alliance.name},
        "group": window.group,
        "period": {"from": window.current[0].isoformat(), "to": window.current[1].isoformat()},
        "previous_period": {"from": window.previous[0].isoformat(),
                            "to": window.previous[1].isoformat()},
        "generated_at": window.as_of.isoformat(timespec="seconds"),
        "suppression": {"threshold": THRESHOLD, "legend": LEGEND,
                        "notes": list(SUPPRESSION_NOTES)},
        "method": list(METHOD_NOTES),
        "referrers": [{"key": r, "name": referrers.get(r, "Unknown")} for r in refs],
        "units": [{"key": u, "name": unit_names.get(u, "Unknown")} for u in units],
    }
    report["flow_matrix"] = {
        "cells": [{"referrer": r, "unit": u, **f("sent", r, u)} for r in refs for u in units],
        "referrer_totals": [{"referrer": r, **f("sent", r, ALL)} for r in refs],
        "unit_totals": [{"unit": u, **f("sent", ALL, u)} for u in units],
        "total": f("sent", ALL, ALL),
    }
    funnel, times_out = [], []
    for u in [*units, ALL]:
        declined = f("outcome", u, "declined")
        funnel.append({
            "unit": u,
            "sent": f("sent", ALL, u),
            "accepted": f("decision", u, "accepted"),
            "first_contact": f("contact", u, "contacted"),
            "no_first_contact_yet": f("contact", u, "not-contacted"),
            "completed": f("outcome", u, "completed"),
            "in_progress": f("outcome", u, "in-progress"),
            "awaiting_decision": f("outcome", u, "awaiting"),
            "declined": declined,
            "withdrawn_before_decision": f("outcome", u, "withdrawn"),
            "cancelled_after_acceptance": f("outcome", u, "cancelled-after-acceptance"),
            "failed": f("outcome", u, "failed"),
            "waitlisted": f("waitlist", u, "waitlist"),
            "reasons": [{"status": s, "reason": code, **f("reason", u, s, code)}
                        for s in CLOSED_REASONS for code in dims[f"reason:{s}"]],
        })
        within, outside = f("target", u, "within"), f("target", u, "outside")
        decided = [f("decision", u, "accepted"), declined]
        times_out.append({
            "unit": u,
            "decision_days": lay.stat("decision_days", u, _sum_published(decided)),
            "first_contact_days": lay.stat("contact_days", u, f("contact", u, "contacted")),
            "within_target": within,
            "outside_target": outside,
            "within_target_percent": lay.pct(within, [within, outside]),
        })
    report["funnel"] = funnel
    report["times"] = times_out

    sn_groups = []
    for g in [*dims["safety-net"], ALL]:
        up, not_up = f("safety-net", g, "stepped-up"), f("safety-net", g, "not-stepped-up")
        sn_groups.append({"group": g, "discharged": f("safety-net", g, ALL), "stepped_up": up,
                          "not_stepped_up": not_up,
                          "stepped_up_percent": lay.pct(up, [up, not_up])})
    report["safety_net"] = {"groups": sn_groups[:-1], "total": sn_groups[-1]}

    ack = []
    for u in [*URGENCIES, ALL]:
        w, late, pend = (f("ack", u, s) for s in ACK_STATES)
        ack.append({"urgency": u, "within": w, "late": late, "pending": pend,
                    "within_percent": lay.pct(w, [w, late])})
    report["flags"] = {
        "triggers": dims["flags"],
        "cells": [{"trigger": t, "urgency": u, **f("flags", t, u)}
                  for t in dims["flags"] for u in URGENCIES],
        "trigger_totals": [{"trigger": t, **f("flags", t, ALL)} for t in dims["flags"]],
        "urgency_totals": [{"urgency": u, **f("flags", ALL, u)} for u in URGENCIES],
        "total": f("flags", ALL, ALL),
        "acknowledgement": ack,
    }
    days = _capacity_days(db, window)
    for offer in capacity:
        # Waitlisted referrals per offer (units are organisations when grouped by them).
        by_offer = window.group != "organisation" and offer["offer"] in units
        offer["waitlisted"] = f("waitlist", offer["offer"], "waitlist") if by_offer else None
        offer["days"] = days(offer["offer"])
    report["capacity"] = capacity

    equality = {}
    for dim in EQUALITY:
        measure = f"eq:{dim}"
        equality[dim] = {
            "rows": [{"value": v, "sent": f(measure, v, ALL),
                      "accepted": f(measure, v, "accepted"),
                      "not_accepted": f(measure, v, "not-accepted")} for v in dims[measure]],
            "total": {"sent": f(measure, ALL, ALL), "accepted": f(measure, ALL, "accepted"),
                      "not_accepted": f(measure, ALL, "not-accepted")},
        }
    report["equality"] = equality
    report["trend"] = {
        period: [{"month": f"{m[:4]}-{m[4:]}",
                  "value": counts.reg.publish((period, "month", m, "", ""))}
                 for m in dims[f"month:{period}"]]
        for period in PERIODS
    }
    return report


def _capacity_days(db: Session, window: Window):
    """offer -> {capacity: {period: days}} over each period (CAPACITY and 'not-recorded').

    Offers are services, not people: their days are not suppressed."""
    params = queries.parameters(window)
    length = {"current": max(0.0, (params["end_at"] - params["current_lo"]).total_seconds()),
              "previous": (params["current_lo"] - params["lo"]).total_seconds()}
    seconds: dict[tuple[str, str, str], float] = {}
    for offer, period, status, spent in queries.run_capacity(db, window):
        seconds[(offer, period, status)] = spent

    def days(offer: str) -> dict:
        out = {status: {p: round(seconds.get((offer, p, status), 0.0) / 86400, 1)
                        for p in PERIODS} for status in CAPACITY}
        out[NOT_RECORDED] = {p: round(max(0.0, length[p] - sum(
            seconds.get((offer, p, status), 0.0) for status in CAPACITY)) / 86400, 1)
            for p in PERIODS}
        return out

    return days


def _sum_published(figs: list[dict]) -> dict:
    out = {}
    for period in PERIODS:
        parts = [fig[period] for fig in figs]
        out[period] = sum(parts) if all(isinstance(p, int) for p in parts) else "<5"
    return out


def _months(period: tuple[date, date]) -> list[str]:
    start, end = period
    months = []
    y, m = start.year, start.month
    while (y, m) <= (end.year, end.month):
        months.append(f"{y:04d}{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return months


def get_flows(db: Session, actor: Principal, alliance_id: int | None, date_from: date | None,
              date_to: date | None, group: str | None, figures_db: Session | None = None) -> dict:
    """The published flows of an alliance the caller manages (404 for any other).

    The scope is checked on `db`; the figures are read from `figures_db` (the read replica's
    session, service.db.get_flows_session) when given. First the referrals changed since the
    worker last refreshed them are refreshed on `db` (the primary), so the figures hold every
    committed change (read on a replica, from the next read that follows this one's commit)."""
    actor.require(perm.FLOWS_READ)
    alliance = _alliance_in_scope(db, actor, alliance_id)
    refresh_stale_flows(db, wait=True)
    apply_pending_counts(db)
    window = make_window(alliance.id, date_from, date_to, group, clock.now())
    report = build_report(figures_db or db, window, alliance)
    report["generated_by"] = actor.user.display_name if actor.user else "API client"
    return report


def tidy(report: dict) -> list[dict]:
    return _tidy_rows(report)


def month_name(ym: str) -> str:
    year, month = ym.split("-")
    return f"{_calendar.month_abbr[int(month)]} {year}"


__all__ = [
    "FUNNEL_FIELDS",
    "METHOD_NOTES",
    "SUPPRESSION_NOTES",
    "build_report",
    "get_flows",
    "last_full_quarter",
    "make_window",
    "managed_alliances",
    "month_name",
    "previous_period",
    "tidy",
]
