"""Flows API: JSON, tidy CSV and the quarterly PDF for contract managers."""

from __future__ import annotations

import csv
import io

from flask import Response, g
from flask.views import MethodView

from service.api_blueprint import Blueprint
from service.auth import permissions as perm
from service.auth.access import requires
from service.db import get_flows_session, get_session
from service.flows import operations as ops
from service.flows.schemas import FlowsArgsSchema

flows = Blueprint("flows", __name__, url_prefix="/api/v1",
                  description="Alliance flows: aggregate figures with small numbers suppressed")

CSV_COLUMNS = ("section", "measure", "row", "column", "period", "value")


def _report(args) -> dict:
    return ops.get_flows(get_session(), g.principal, args["alliance"], args["date_from"],
                         args["date_to"], args["group"], figures_db=get_flows_session())


def _filename(report: dict, ext: str) -> str:
    period = report["period"]
    return f"alliance-{report['alliance']['id']}-flows-{period['from']}-to-{period['to']}.{ext}"


@flows.route("/flows")
class Flows(MethodView):
    @requires(perm.FLOWS_READ)
    @flows.arguments(FlowsArgsSchema, location="query")
    @flows.response(200)
    def get(self, args):
        """Every flows figure of an alliance you manage, this period and the previous one.

        Counts of 1-4 are "<5"; "*" hides a count that would let a small one be worked out.
        """
        return _report(args)


@flows.route("/flows.csv")
class FlowsCsv(MethodView):
    @requires(perm.FLOWS_READ)
    @flows.arguments(FlowsArgsSchema, location="query")
    @flows.response(200, content_type="text/csv")
    def get(self, args):
        """The same figures as tidy CSV: one row per published cell and period."""
        report = _report(args)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in ops.tidy(report):
            writer.writerow({k: ("" if row[k] is None else row[k]) for k in CSV_COLUMNS})
        return Response(buffer.getvalue(), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{_filename(report, "csv")}"'})


@flows.route("/flows.pdf")
class FlowsPdf(MethodView):
    @requires(perm.FLOWS_READ)
    @flows.arguments(FlowsArgsSchema, location="query")
    @flows.response(200, content_type="application/pdf")
    def get(self, args):
        """The alliance flows report as PDF (by default for the last full quarter)."""
        from service.flows.report import flows_pdf

        report = _report(args)
        return Response(flows_pdf(report), mimetype="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="{_filename(report, "pdf")}"'})


def register(app, api) -> None:
    from service import csrf
    from service.flows.cli import flows_refresh
    from service.flows.facts import register_listener

    register_listener()
    app.cli.add_command(flows_refresh)
    api.register_blueprint(flows)
    csrf.exempt(flows)
