"""Open Referral UK 3.0 API: `GET /openreferral/services[/{id}]` (public directory feed).

Follows the ORUK OpenAPI (`getPaginatedListOfServices`, `getFullyNestedServiceById`):
`page` (from 1) and `per_page` select a page; the answer carries `total_items`,
`total_pages`, `page_number`, `size` (items on this page), `first_page`, `last_page`,
`empty` and `contents`. `search`, `minimum_age` and `maximum_age` filter; other ORUK
filters are ignored. Errors are problem+json like the rest of the API.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from service.auth.access import public
from service.db import get_session
from service.errors import Invalid, StepdownError, problem_response
from service.interop import oruk

bp = Blueprint("openreferral", __name__, url_prefix="/openreferral")

MAX_PER_PAGE = 200


class ServicesQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE  # other ORUK filters (taxonomy, postcode…) are not supported

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000,
                                                                  error="Use a page from 1"))
    per_page = fields.Integer(load_default=50,
                              validate=validate.Range(min=1, max=MAX_PER_PAGE,
                                                      error=f"Use 1 to {MAX_PER_PAGE} per page"))
    search = fields.String(load_default=None, validate=validate.Length(max=200))
    minimum_age = fields.Float(load_default=None, validate=validate.Range(min=0, max=150))
    maximum_age = fields.Float(load_default=None, validate=validate.Range(min=0, max=150))


@bp.errorhandler(StepdownError)
def _problem(exc: StepdownError):
    return problem_response(exc.status, exc.title, exc.detail, errors=exc.errors,
                            headers=exc.headers)


@bp.after_request
def _directory_headers(response):
    # A public directory: any site may read it, caches may keep it for a few minutes.
    response.headers["Access-Control-Allow-Origin"] = "*"
    if response.status_code == 200:
        response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/services")
@public
def list_services():
    try:
        args = ServicesQuerySchema().load(request.args.to_dict())
    except ValidationError as exc:
        raise Invalid("The query has invalid parameters.", errors=exc.messages) from None
    return jsonify(oruk.list_services(get_session(), **args))


@bp.get("/services/<service_id>")
@public
def get_service(service_id: str):
    return jsonify(oruk.get_service(get_session(), service_id))


def register(app, api) -> None:  # noqa: ARG001
    app.register_blueprint(bp)
    from service.interop.oruk_import import import_oruk

    app.cli.add_command(import_oruk)
