"""The flows API, CSV, PDF and page as a contract manager sees them: scope, suppression that
cannot be undone from the rest of the response, and no person-level data anywhere."""

from __future__ import annotations

import csv
import io
import math
import re

import pytest
from pypdf import PdfReader

from tests.flows_factories import SECRET_TEXT, seed_flows

Q4 = "from=2026-10-01&to=2026-12-31"


@pytest.fixture
def seeded(app, db, demo):
    data = seed_flows(db, demo)
    db.commit()
    return data


@pytest.fixture
def manager(as_user, seeded):
    return as_user("contracts")


def _json(manager, demo, extra=""):
    response = manager.get(f"/api/v1/flows?alliance={demo['alliance'].id}&{Q4}{extra}")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_json()


def test_scope_permission_and_validation(manager, as_user, demo, db):
    from sqlmodel import select

    from models import Alliance

    other = db.exec(select(Alliance).where(Alliance.name == "Another Alliance")).one()
    assert manager.get(f"/api/v1/flows?alliance={other.id}&{Q4}").status_code == 404
    assert manager.get(f"/api/v1/flows?alliance=999999&{Q4}").status_code == 404
    coordinator = as_user("coordinator")
    assert coordinator.get(f"/api/v1/flows?alliance={demo['alliance'].id}").status_code == 403
    bad = manager.get(f"/api/v1/flows?alliance={demo['alliance'].id}&from=2026-12-31"
                      "&to=2026-10-01")
    assert bad.status_code == 422 and "to" in bad.get_json()["errors"]
    assert manager.get("/api/v1/flows?group=nonsense").status_code == 422
    # Defaults: the only managed alliance, the last full quarter before today.
    body = manager.get("/api/v1/flows").get_json()
    assert body["period"] == {"from": "2026-10-01", "to": "2026-12-31"}
    assert body["previous_period"] == {"from": "2026-07-01", "to": "2026-09-30"}
    assert body["generated_by"] == "Chris Contracts"


def _published(v):
    return isinstance(v, int)


def _relations(body):
    """The arithmetic a reader can do with the response: [(terms, ...)] where each term is
    (coef, value) and sum(coef * value) == 0, per period."""
    lines = []
    for period in ("current", "previous"):
        def v(fig, period=period):
            return fig[period]

        m = body["flow_matrix"]
        for rt in m["referrer_totals"]:
            cells = [c for c in m["cells"] if c["referrer"] == rt["referrer"]]
            lines.append([(1, v(c)) for c in cells] + [(-1, v(rt))])
        for ut in m["unit_totals"]:
            cells = [c for c in m["cells"] if c["unit"] == ut["unit"]]
            lines.append([(1, v(c)) for c in cells] + [(-1, v(ut))])
        lines.append([(1, v(t)) for t in m["referrer_totals"]] + [(-1, v(m["total"]))])
        lines.append([(1, v(t)) for t in m["unit_totals"]] + [(-1, v(m["total"]))])
        funnels = body["funnel"]
        unit_totals = {t["unit"]: t for t in m["unit_totals"]}
        unit_totals["*"] = m["total"]
        for f in funnels:
            lines.append([(1, v(f["sent"])), (-1, v(unit_totals[f["unit"]]))])
            lines.append([(1, v(f[k])) for k in ("awaiting_decision", "declined",
                                                  "withdrawn_before_decision", "accepted")]
                         + [(-1, v(f["sent"]))])
            lines.append([(1, v(f[k])) for k in ("in_progress", "completed", "failed",
                                                  "cancelled_after_acceptance")]
                         + [(-1, v(f["accepted"]))])
            lines.append([(1, v(f["first_contact"])), (1, v(f["no_first_contact_yet"])),
                          (-1, v(f["accepted"]))])
            for status, parts in (("rejected", ["declined"]),
                                  ("cancelled", ["withdrawn_before_decision",
                                                 "cancelled_after_acceptance"]),
                                  ("failed", ["failed"])):
                lines.append([(1, v(x)) for x in f["reasons"] if x["status"] == status]
                             + [(-1, v(f[p])) for p in parts])
        for t in body["times"]:
            f = next(x for x in funnels if x["unit"] == t["unit"])
            lines.append([(1, v(t["within_target"])), (1, v(t["outside_target"])),
                          (-1, v(f["accepted"])), (-1, v(f["declined"]))])
        for key in ("sent", "accepted", "first_contact", "declined", "completed"):
            lines.append([(1, v(f[key])) for f in funnels[:-1]] + [(-1, v(funnels[-1][key]))])
        for table in body["equality"].values():
            for row in [*table["rows"], table["total"]]:
                lines.append([(1, v(row["accepted"])), (1, v(row["not_accepted"])),
                              (-1, v(row["sent"]))])
            for k in ("sent", "accepted", "not_accepted"):
                lines.append([(1, v(row[k])) for row in table["rows"]] + [(-1, v(table["total"][k]))])
            lines.append([(1, v(table["total"]["sent"])), (-1, v(m["total"]))])
            lines.append([(1, v(table["total"]["accepted"])), (-1, v(funnels[-1]["accepted"]))])
        lines.append([(1, p["value"]) for p in body["trend"][period]] + [(-1, v(m["total"]))])
        fl = body["flags"]
        for u in fl["urgency_totals"]:
            cells = [c for c in fl["cells"] if c["urgency"] == u["urgency"]]
            lines.append([(1, v(c)) for c in cells] + [(-1, v(u))])
            a = next(x for x in fl["acknowledgement"] if x["urgency"] == u["urgency"])
            lines.append([(1, v(a[k])) for k in ("within", "late", "pending")] + [(-1, v(u))])
        sn = body["safety_net"]
        for g in [*sn["groups"], sn["total"]]:
            lines.append([(1, v(g["stepped_up"])), (1, v(g["not_stepped_up"])),
                          (-1, v(g["discharged"]))])
    return lines


def _reader_bounds(lines):
    """What a reader can deduce about each hidden value: plain interval reasoning, written
    independently of service.flows.disclosure. Hidden values are variables identified by
    the position of their mention in the response."""
    variables = {}
    equations = []
    for line in lines:
        terms, constant = [], 0
        for coef, value in line:
            if _published(value):
                constant -= coef * value
            else:
                var = len(variables)
                variables[var] = [1, 4] if value == "<5" else [5, math.inf]
                terms.append((coef, var))
        equations.append((terms, constant))
    return variables, equations


def test_suppressed_values_cannot_be_recovered(manager, demo):
    body = _json(manager, demo)
    lines = _relations(body)
    # Every published relation holds with the true values: nothing published is fudged.
    for line in lines:
        if all(_published(v) for _, v in line):
            assert sum(c * v for c, v in line) == 0
    # No line has exactly one hidden entry (that entry would be its difference).
    for line in lines:
        assert sum(not _published(v) for _, v in line) != 1, line
    # Derived figures never use a hidden count.
    for f in body["funnel"]:
        for fig in [f[k] for k in f if isinstance(f[k], dict)] + f["reasons"]:
            if fig["change"] is not None:
                assert _published(fig["current"]) and _published(fig["previous"])
    for t in body["times"]:
        for period in ("current", "previous"):
            if t["within_target_percent"][period] is not None:
                assert _published(t["within_target"][period])
                assert _published(t["outside_target"][period])
            f = next(x for x in body["funnel"] if x["unit"] == t["unit"])
            if t["first_contact_days"]["median"][period] is not None:
                assert _published(f["first_contact"][period])
                assert f["first_contact"][period] >= 5


def test_interval_reader_cannot_pin_any_small_value(manager, demo):
    body = _json(manager, demo)
    variables, equations = _reader_bounds(_relations(body))
    for _ in range(100):
        changed = False
        for terms, constant in equations:
            for coef, var in terms:
                lo_rest = hi_rest = 0.0
                for c, other in terms:
                    if other == var:
                        continue
                    lo, hi = variables[other]
                    lo_rest += c * (lo if c > 0 else hi)
                    hi_rest += c * (hi if c > 0 else lo)
                low, high = (constant - hi_rest) / coef, (constant - lo_rest) / coef
                if coef < 0:
                    low, high = high, low
                if low > variables[var][0]:
                    variables[var][0], changed = math.ceil(low), True
                if high < variables[var][1]:
                    variables[var][1], changed = math.floor(high), True
        if not changed:
            break
    small = [bounds for bounds in variables.values() if bounds[1] <= 4]
    assert small
    for lo, hi in small:
        assert lo < hi, "a count shown as <5 can be worked out"
    # (A "*" is 5 or more; pinning one reveals no small number.)


def _identifiers(seeded):
    out = []
    for p in seeded.people:
        out += [p.nhs_number, p.given_name, p.family_name, p.date_of_birth.isoformat(),
                p.date_of_birth.strftime("%d/%m/%Y")]
    return out + [SECRET_TEXT, "Private", "Free text", "Biscuit"]


def test_csv_is_tidy_and_matches_json(manager, demo):
    body = _json(manager, demo)
    response = manager.get(f"/api/v1/flows.csv?alliance={demo['alliance'].id}&{Q4}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert set(rows[0]) == {"section", "measure", "row", "column", "period", "value"}
    grand = [r for r in rows if r["section"] == "flow_matrix" and r["row"] == "All"
             and r["column"] == "All"]
    assert {r["period"]: r["value"] for r in grand} == {
        "current": str(body["flow_matrix"]["total"]["current"]),
        "previous": str(body["flow_matrix"]["total"]["previous"])}
    values = {r["value"] for r in rows}
    assert "<5" in values
    for value in values:
        assert value == "" or value in ("<5", "*") or re.fullmatch(r"-?\d+(\.\d+)?", value)


def test_no_person_data_in_json_csv_pdf_or_page(manager, demo, seeded):
    query = f"alliance={demo['alliance'].id}&{Q4}"
    texts = {
        "json": manager.get(f"/api/v1/flows?{query}").get_data(as_text=True),
        "csv": manager.get(f"/api/v1/flows.csv?{query}").get_data(as_text=True),
        "page": manager.get(f"/flows?{query}").get_data(as_text=True),
    }
    pdf = manager.get(f"/api/v1/flows.pdf?{query}")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    reader = PdfReader(io.BytesIO(pdf.data))
    texts["pdf"] = "\n".join(page.extract_text() for page in reader.pages)
    for name, text in texts.items():
        for identifier in _identifiers(seeded):
            assert identifier not in text, (name, identifier)
    assert "<5" in texts["pdf"] and "North West London Step-down Alliance" in texts["pdf"]
    for heading in ("Headline figures", "Flows from statutory teams", "Times and trend",
                    "Funnel and reasons", "Safety net", "Capacity", "Equality",
                    "Suppression and method", "Generated at"):
        assert heading in texts["pdf"], heading
    assert 6 <= len(reader.pages) <= 14


def test_flows_page(manager, demo):
    page = manager.get(f"/flows?alliance={demo['alliance'].id}&{Q4}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Alliance flows" in html and "<svg" in html and "table-flow-matrix" in html
    assert not re.search(r"\sstyle=", html) and "<style" not in html
    assert 'href="/flows"' in html  # the contract manager's navigation entry
    bad = manager.get(f"/flows?alliance={demo['alliance'].id}&from=2026-12-31&to=2026-01-01")
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "There is a problem" in text and "2026-12-31" in text
    nonsense = manager.get("/flows?from=yesterday")
    assert nonsense.status_code == 422 and "yesterday" in nonsense.get_data(as_text=True)
