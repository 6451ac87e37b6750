"""The flows page for contract managers (GET form: alliance, period, grouping)."""

from __future__ import annotations

from flask import Blueprint, g, render_template, request
from marshmallow import ValidationError

from service.auth import permissions as perm
from service.auth.access import requires
from service.db import get_flows_session, get_session
from service.errors import Invalid
from service.flows import operations as ops
from service.flows.queries import GROUPS
from service.flows.report import GROUP_LABELS, view_context
from service.flows.schemas import FlowsArgsSchema

bp = Blueprint("flows_pages", __name__)


@bp.get("/flows")
@requires(perm.FLOWS_READ)
def flows_page():
    db = get_session()
    alliances = ops.managed_alliances(db, g.principal)
    form = {"alliance": request.args.get("alliance", ""), "from": request.args.get("from", ""),
            "to": request.args.get("to", ""), "group": request.args.get("group", "offer")}
    errors: dict = {}
    context: dict = {}
    status = 200
    try:
        args = FlowsArgsSchema().load({k: v for k, v in request.args.items()
                                       if k in ("alliance", "from", "to", "group") and v})
        report = ops.get_flows(db, g.principal, args["alliance"], args["date_from"],
                               args["date_to"], args["group"], figures_db=get_flows_session())
        form.update({"alliance": str(report["alliance"]["id"]),
                     "from": report["period"]["from"], "to": report["period"]["to"],
                     "group": report["group"]})
        context = view_context(report)
        context["query"] = {"alliance": report["alliance"]["id"],
                            "from": report["period"]["from"], "to": report["period"]["to"],
                            "group": report["group"]}
    except ValidationError as exc:
        errors = {_field(k): v for k, v in exc.messages.items()}
        status = 422
    except Invalid as exc:
        errors = exc.errors or {"from": [exc.detail]}
        status = 422
    return render_template(
        "flows/page.html", form=form, errors=errors, alliances=alliances,
        alliances_options=[(str(a.id), a.name) for a in alliances],
        group_options=[(g_, GROUP_LABELS[g_]) for g_ in GROUPS],
        report=context.pop("report", None), **context), status


def _field(name: str) -> str:
    return {"date_from": "from", "date_to": "to"}.get(name, name)


def register(app, api) -> None:  # noqa: ARG001
    app.register_blueprint(bp)
