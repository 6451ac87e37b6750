"""Flows figures against hand-computed values (the scenario of tests/flows_factories.py).

Runs on SQLite, and on PostgreSQL with TEST_DATABASE_URL (percentile_cont and grouping
sets there; the window-function path is also checked against it).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import select

from models import Alliance, FlowDay, FlowMonth
from models.flows import FlowInputs, flow_values
from models.working_days import working_days_between
from service.flows import operations as ops
from service.flows import queries
from service.flows.calendar import london_midnight_utc
from service.flows.facts import rebuild_flow_counts, refresh_flows
from tests.conftest import ON_POSTGRES
from tests.flows_factories import seed_flows

Q4 = (date(2026, 10, 1), date(2026, 12, 31))


@pytest.fixture
def seeded(app, db, demo):
    data = seed_flows(db, demo)
    db.commit()
    return data


def _report(app, db, demo, clock, group="offer", suppress=False, percentile=None):
    with app.app_context():
        window = ops.make_window(demo["alliance"].id, *Q4, group, clock.now())
        return ops.build_report(db, window, db.get(Alliance, demo["alliance"].id),
                                percentile=percentile, suppress=suppress)


def _cur_prev(fig):
    return fig["current"], fig["previous"]


def test_flow_values_count_working_days_between_london_dates():
    def values(sent, decided=None, contact=None, status="in-progress"):
        return flow_values(FlowInputs(
            status=status, reason_code=None, waitlist=False, sent_at=sent, decided_at=decided,
            first_attended_at=contact, borough=None, sex=None, ethnic_category=None,
            date_of_birth=date(1990, 6, 15)))

    start = datetime(2026, 12, 1, 10, tzinfo=UTC)
    for offset in range(60):
        decided = start + timedelta(days=offset)
        assert values(start, decided)["decision_days"] == working_days_between(
            start.date(), decided.date())
    # Christmas 2026: Thursday 24th to Tuesday 29th is one working day.
    christmas = values(datetime(2026, 12, 24, 9, tzinfo=UTC), datetime(2026, 12, 29, 9, tzinfo=UTC),
                       datetime(2027, 1, 4, 9, tzinfo=UTC))
    assert (christmas["decision_days"], christmas["contact_days"]) == (1, 3)
    # 23:30 UTC on 30 Sep is 00:30 on 1 Oct in London; in winter UTC is London time.
    assert values(datetime(2026, 9, 30, 23, 30, tzinfo=UTC))["sent_on"] == date(2026, 10, 1)
    assert values(datetime(2026, 12, 1, 23, 30, tzinfo=UTC))["sent_on"] == date(2026, 12, 1)
    # Declined and withdrawn referrals have no first-contact time, whatever was recorded.
    declined = values(start, start, start, status="rejected")
    assert (declined["outcome"], declined["contact_days"], declined["reason"]) == (
        "declined", None, "not-recorded")
    assert london_midnight_utc(date(2026, 10, 1)) == datetime(2026, 9, 30, 23, 0)
    assert london_midnight_utc(date(2026, 12, 1)) == datetime(2026, 12, 1, 0, 0)


def test_previous_period_and_default_quarter():
    assert ops.last_full_quarter(date(2027, 1, 4)) == Q4
    assert ops.previous_period(*Q4) == (date(2026, 7, 1), date(2026, 9, 30))
    assert ops.previous_period(date(2026, 3, 10), date(2026, 3, 19)) == (
        date(2026, 2, 28), date(2026, 3, 9))


def test_every_figure_against_hand_computed_values(app, db, demo, clock, seeded):
    r = _report(app, db, demo, clock)
    orgs = demo["organisations"]
    a, b, c = (str(seeded.offers[k].id) for k in ("A1", "B1", "C1"))
    ta, tb = str(orgs["trust-a"].id), str(orgs["trust-b"].id)
    assert [u["key"] for u in r["units"]] == [a, b, c]  # by name: Peer, Resilience, Work
    assert {x["key"] for x in r["referrers"]} == {ta, tb}

    # Flow matrix (current, previous): out-of-alliance and too-early referrals never count;
    # 23:30 UTC on 30 Sep is 1 Oct in London.
    cells = {(x["referrer"], x["unit"]): _cur_prev(x) for x in r["flow_matrix"]["cells"]}
    assert cells == {(ta, a): (7, 6), (ta, b): (6, 1), (ta, c): (2, 0),
                     (tb, a): (3, 0), (tb, b): (0, 0), (tb, c): (7, 1)}
    assert {x["referrer"]: _cur_prev(x) for x in r["flow_matrix"]["referrer_totals"]} == {
        ta: (15, 7), tb: (10, 1)}
    assert {x["unit"]: _cur_prev(x) for x in r["flow_matrix"]["unit_totals"]} == {
        a: (10, 6), b: (6, 1), c: (9, 1)}
    assert r["flow_matrix"]["total"] == {"current": 25, "previous": 8, "change": 17}

    # Funnel per offer and for all offers (current period; previous checked for A1 and all).
    funnel = {f["unit"]: f for f in r["funnel"]}
    expected = {
        a: dict(sent=10, accepted=5, first_contact=3, no_first_contact_yet=2, completed=1,
                in_progress=2, awaiting_decision=1, declined=3, withdrawn_before_decision=1,
                cancelled_after_acceptance=1, failed=1, waitlisted=1),
        b: dict(sent=6, accepted=5, first_contact=5, no_first_contact_yet=0, completed=3,
                in_progress=2, awaiting_decision=0, declined=1, withdrawn_before_decision=0,
                cancelled_after_acceptance=0, failed=0, waitlisted=0),
        c: dict(sent=9, accepted=3, first_contact=2, no_first_contact_yet=1, completed=2,
                in_progress=1, awaiting_decision=2, declined=3, withdrawn_before_decision=1,
                cancelled_after_acceptance=0, failed=0, waitlisted=0),
        "*": dict(sent=25, accepted=13, first_contact=10, no_first_contact_yet=3, completed=6,
                  in_progress=5, awaiting_decision=3, declined=7, withdrawn_before_decision=2,
                  cancelled_after_acceptance=1, failed=1, waitlisted=1),
    }
    for unit, stages in expected.items():
        assert {k: funnel[unit][k]["current"] for k in stages} == stages, unit
    assert {k: funnel[a][k]["previous"] for k in ("sent", "accepted", "first_contact",
                                                  "in_progress")} == {
        "sent": 6, "accepted": 6, "first_contact": 6, "in_progress": 6}
    assert {k: funnel["*"][k]["previous"] for k in ("sent", "declined", "awaiting_decision")} \
        == {"sent": 8, "declined": 1, "awaiting_decision": 1}
    reasons = {(f["unit"], x["status"], x["reason"]): x["current"]
               for f in r["funnel"] for x in f["reasons"] if x["current"]}
    assert reasons == {
        (a, "rejected", "no-capacity"): 1, (a, "rejected", "not-eligible"): 1,
        (a, "rejected", "needs-specialist-support"): 1, (a, "cancelled", "no-longer-needed"): 1,
        (a, "cancelled", "person-declined"): 1, (a, "failed", "could-not-engage"): 1,
        (b, "rejected", "no-capacity"): 1,
        (c, "rejected", "not-eligible"): 2, (c, "rejected", "returned-with-advice"): 1,
        (c, "cancelled", "sent-in-error"): 1,
        ("*", "rejected", "no-capacity"): 2, ("*", "rejected", "not-eligible"): 3,
        ("*", "rejected", "needs-specialist-support"): 1,
        ("*", "rejected", "returned-with-advice"): 1, ("*", "cancelled", "no-longer-needed"): 1,
        ("*", "cancelled", "person-declined"): 1, ("*", "cancelled", "sent-in-error"): 1,
        ("*", "failed", "could-not-engage"): 1,
    }

    # Times in working days: A1's decisions [0,0,1,1,2,5,7,8] include r1 (14 -> 23 Dec: 7)
    # and r2 (Thu 24 Dec -> Tue 29 Dec across Christmas and the substitute holiday: 1).
    times = {t["unit"]: t for t in r["times"]}
    decision = {u: (t["decision_days"]["median"]["current"], t["decision_days"]["p90"]["current"])
                for u, t in times.items()}
    assert decision == {a: (1.5, 7.3), b: (1.5, 3.5), c: (6.5, 11.0), "*": (2.5, 8.2)}
    assert times[a]["decision_days"]["median"]["previous"] == 2.0
    contact = {u: (t["first_contact_days"]["median"]["current"],
                   t["first_contact_days"]["p90"]["current"]) for u, t in times.items()}
    # Fewer than 5 first contacts (A1: 3, C1: 2): no median is published.
    assert contact == {a: (None, None), b: (1.0, 1.6), c: (None, None), "*": (1.0, 2.0)}
    within = {u: (t["within_target"]["current"], t["outside_target"]["current"],
                  t["within_target_percent"]["current"]) for u, t in times.items()}
    assert within == {a: (6, 2, 75.0), b: (4, 2, 66.7), c: (5, 1, 83.3), "*": (15, 5, 75.0)}

    # Safety net: 57 days counts, 91 days does not; the previous period's one step-up.
    sn = {g["group"]: g for g in r["safety_net"]["groups"]}
    assert {g: (x["discharged"]["current"], x["stepped_up"]["current"],
                x["not_stepped_up"]["current"]) for g, x in sn.items()} == {
        ta: (3, 1, 2), tb: (2, 1, 1)}
    total = r["safety_net"]["total"]
    assert _cur_prev(total["discharged"]) == (5, 1)
    assert _cur_prev(total["stepped_up"]) == (2, 1)
    assert total["stepped_up_percent"] == {"current": 40.0, "previous": 100.0}

    # Flags by trigger x urgency, and acknowledgement against target.
    flags = {(x["trigger"], x["urgency"]): x["current"] for x in r["flags"]["cells"]
             if x["current"]}
    assert flags == {("concern", "emergency"): 1, ("concern", "urgent"): 1,
                     ("responsibility-gap", "urgent"): 1, ("not-answered", "routine"): 3}
    assert {x["urgency"]: x["current"] for x in r["flags"]["urgency_totals"]} == {
        "emergency": 1, "urgent": 2, "routine": 3}
    assert _cur_prev(r["flags"]["total"]) == (6, 1)
    ack = {x["urgency"]: (x["within"]["current"], x["late"]["current"], x["pending"]["current"],
                          x["within_percent"]["current"]) for x in r["flags"]["acknowledgement"]}
    assert ack == {"emergency": (1, 0, 0, 100.0), "urgent": (1, 1, 0, 50.0),
                   "routine": (1, 1, 1, 50.0), "*": (3, 2, 1, 60.0)}

    # Capacity: the offers' state and the waitlisted referrals.
    capacity = {o["name"]: (o["capacity"], o["waitlist_weeks"], o["waitlisted"]["current"])
                for o in r["capacity"]}
    assert capacity == {"Peer mentoring": ("capacity", None, 1),
                        "Resilience group": ("waitlist", 6, 0),
                        "Work coaching": ("no-capacity", None, 0)}
    # Days at each capacity, this period (1 Oct 00:00 London = 30 Sep 23:00 UTC, to 1 Jan)
    # and the previous one: the hour the clocks go back is in Q4.
    days = {o["name"]: {status: (d["current"], d["previous"]) for status, d in o["days"].items()}
            for o in r["capacity"]}
    assert days["Peer mentoring"] == {"capacity": (92.0, 92.0), "waitlist": (0.0, 0.0),
                                      "no-capacity": (0.0, 0.0), "not-recorded": (0.0, 0.0)}
    assert days["Resilience group"] == {"capacity": (46.0, 92.0), "waitlist": (46.0, 0.0),
                                        "no-capacity": (0.0, 0.0), "not-recorded": (0.0, 0.0)}
    assert days["Work coaching"] == {"capacity": (0.0, 0.0), "waitlist": (0.0, 0.0),
                                     "no-capacity": (31.0, 0.0), "not-recorded": (61.0, 92.0)}

    # Equality: sent / accepted by borough, age band (age on the day sent), sex, ethnicity.
    def table(dim):
        return {row["value"]: (row["sent"]["current"], row["accepted"]["current"])
                for row in r["equality"][dim]["rows"] if row["sent"]["current"]}

    assert table("borough") == {"Brent": (10, 5), "Harrow": (8, 6), "Lambeth": (6, 2),
                                "not-recorded": (1, 0)}
    assert table("age_band") == {"0-17": (1, 0), "18-24": (1, 0), "35-44": (5, 3),
                                 "65+": (18, 10)}
    assert table("sex") == {"female": (12, 7), "male": (8, 6), "not-recorded": (5, 0)}
    assert table("ethnic_category") == {"A": (20, 13), "N": (3, 0), "not-recorded": (2, 0)}
    assert r["equality"]["borough"]["total"]["not_accepted"]["current"] == 12
    assert r["equality"]["borough"]["rows"][0]["sent"]["previous"] == 6  # Brent, Q3

    # Trend by London month.
    assert [(p["month"], p["value"]) for p in r["trend"]["current"]] == [
        ("2026-10", 12), ("2026-11", 8), ("2026-12", 5)]
    assert [(p["month"], p["value"]) for p in r["trend"]["previous"]] == [
        ("2026-07", 7), ("2026-08", 0), ("2026-09", 1)]


def test_grouping_by_team_and_by_organisation(app, db, demo, clock, seeded):
    teams, orgs = demo["teams"], demo["organisations"]
    by_team = _report(app, db, demo, clock, group="team")
    brent = str(teams["Brent Community Mental Health Team"].id)
    totals = {x["referrer"]: x["current"] for x in by_team["flow_matrix"]["referrer_totals"]}
    assert totals[brent] == 15
    by_org = _report(app, db, demo, clock, group="organisation")
    units = {x["unit"]: x["current"] for x in by_org["flow_matrix"]["unit_totals"]}
    assert units == {str(orgs["vcse-a"].id): 10, str(orgs["vcse-b"].id): 6,
                     str(orgs["vcse-c"].id): 9}


@pytest.mark.postgres
def test_window_percentiles_equal_percentile_cont(app, db, demo, clock, seeded):
    assert ON_POSTGRES
    cont = _report(app, db, demo, clock, percentile="percentile_cont")["times"]
    window = _report(app, db, demo, clock, percentile="window")["times"]
    assert cont == window


def test_whole_months_come_from_monthly_counts_and_cut_months_from_daily_counts():
    as_of = datetime(2027, 1, 4, 9, tzinfo=UTC)
    q4 = queries.Window(1, "offer", Q4, (date(2026, 7, 1), date(2026, 9, 30)), as_of)
    assert q4.split(Q4) == ([202610, 202611, 202612], [])
    for dialect in ("sqlite", "postgresql"):
        sql = queries.counts_sql(dialect, q4)
        assert "flow_month" in sql and "referral_flow" not in sql
        assert "GROUPING SETS" not in sql
    cut = queries.Window(1, "offer", (date(2026, 10, 15), date(2026, 12, 31)),
                         (date(2026, 7, 31), date(2026, 10, 14)), as_of)
    assert cut.split(cut.current) == ([202611, 202612], [(date(2026, 10, 15), date(2026, 10, 31))])
    assert cut.split(cut.previous) == ([202608, 202609], [(date(2026, 7, 31), date(2026, 7, 31)),
                                                          (date(2026, 10, 1), date(2026, 10, 14))])
    params = queries.parameters(cut)
    assert [params[f"d{i}_lo"] for i in range(3)] == [
        date(2026, 10, 15), date(2026, 7, 31), date(2026, 10, 1)]
    assert "flow_day" in queries.counts_sql("sqlite", cut)
    assert "referral_flow" not in queries.counts_sql("sqlite", cut)
    assert "percentile_cont" in queries.times_sql("postgresql", q4, "percentile_cont")
    assert "percentile_cont" not in queries.times_sql("sqlite", q4)


@pytest.mark.parametrize("period", [Q4, (date(2026, 10, 2), date(2026, 12, 30)),
                                    (date(2026, 11, 16), date(2026, 12, 31)),
                                    (date(2026, 12, 7), date(2026, 12, 9))])
@pytest.mark.parametrize("group", ["offer", "team"])
def test_counts_give_the_same_figures_as_the_flow_rows(app, db, demo, clock, seeded,
                                                               period, group):
    alliance = db.get(Alliance, demo["alliance"].id)

    def report(months):
        window = ops.make_window(alliance.id, *period, group, clock.now())
        window = queries.Window(window.alliance_id, window.group, window.current,
                                window.previous, window.as_of, months=months)
        with app.app_context():
            return ops.build_report(db, window, alliance, suppress=False)

    from_months, from_rows = report(True), report(False)
    assert from_months["flow_matrix"]["total"]["current"] > 0
    assert from_months == from_rows


def test_counts_kept_on_write_equal_a_recount(db, seeded):
    def counts():
        return (sorted(db.exec(select(FlowMonth.sent_month, FlowMonth.referring_team_id,
                                      FlowMonth.offer_id, FlowMonth.measure, FlowMonth.a,
                                      FlowMonth.b, FlowMonth.n)).all()),
                sorted(db.exec(select(FlowDay.sent_on, FlowDay.sent_month,
                                      FlowDay.referring_team_id, FlowDay.offer_id,
                                      FlowDay.measure, FlowDay.a, FlowDay.b, FlowDay.n)).all()))

    kept = counts()
    for table in kept:
        assert len(table) > 50 and all(n > 0 for *_, n in table)
    rebuild_flow_counts(db)
    assert counts() == kept
    # One more change moves the counts as a recount would.
    r1 = seeded.referrals["r18"]
    r1.status, r1.decided_at = "rejected", datetime(2026, 10, 14, 9, tzinfo=UTC)
    r1.reason_code = "no-capacity"
    db.add(r1)
    db.flush()
    refresh_flows(db, [r1.id])
    kept = counts()
    rebuild_flow_counts(db)
    assert counts() == kept
