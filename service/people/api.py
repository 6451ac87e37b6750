"""People and consents API. NHS numbers travel only in bodies, never in URLs."""

from __future__ import annotations

from flask import g, request
from flask.views import MethodView

from service.api_blueprint import Blueprint
from service.auth import permissions as perm
from service.auth.access import requires
from service.db import get_session
from service.errors import NotFound
from service.http import IDEMPOTENCY_KEY, IF_MATCH, etag_of, idempotent
from service.people import operations as ops
from service.people.schemas import (
    MAX_ID,
    ConsentCreateSchema,
    ConsentPageArgsSchema,
    ConsentPageSchema,
    ConsentSchema,
    ConsentWithdrawSchema,
    PersonCreateSchema,
    PersonPatchSchema,
    PersonSchema,
    PersonSearchResultSchema,
    PersonSearchSchema,
)
from service.ratelimit import SEARCH_LIMIT, caller_key, limiter

people = Blueprint("people", __name__, url_prefix="/api/v1/people",
                   description="People stepping down, their About me, needs and consents")
consents = Blueprint("consents", __name__, url_prefix="/api/v1/consents",
                     description="Consent withdrawal")


def _ids_in_range(detail: str):
    """A path id beyond the 32-bit key range names no record: 404, not a database error."""

    def check():
        for value in (request.view_args or {}).values():
            if isinstance(value, int) and not 0 < value <= MAX_ID:
                raise NotFound(detail)

    return check


people.before_request(_ids_in_range("No such person."))
consents.before_request(_ids_in_range("No such consent."))


def _person_response(person: dict, status: int = 200):
    headers = {"ETag": etag_of("person", person["id"], person["version"])}
    if status == 201:
        headers["Location"] = f"/api/v1/people/{person['id']}"
    return person, status, headers


@people.route("")
class People(MethodView):
    @requires(perm.PEOPLE_WRITE)
    @idempotent
    @people.doc(**IDEMPOTENCY_KEY)
    @people.arguments(PersonCreateSchema)
    @people.response(201, PersonSchema)
    def post(self, data):
        """Register a person (NHS number Modulus 11 checked, unique: 409 if already registered)."""
        return _person_response(ops.register_person(get_session(), g.principal, data), 201)


@people.route("/search")
class PeopleSearch(MethodView):
    decorators = [limiter.limit(SEARCH_LIMIT, key_func=caller_key,
                                error_message="Too many searches. Wait a minute and try again.")]

    @requires(perm.PEOPLE_READ)
    @people.arguments(PersonSearchSchema)
    @people.response(200, PersonSearchResultSchema)
    def post(self, data):
        """Find a person by NHS number; empty when there is none you may see."""
        return {"items": ops.search_people(get_session(), g.principal, data["nhs_number"])}


@people.route("/<int:person_id>")
class PersonById(MethodView):
    @requires(perm.PEOPLE_READ)
    @people.response(200, PersonSchema)
    def get(self, person_id):
        """One person, shaped for the caller (VCSE callers: the minimum necessary)."""
        return _person_response(ops.get_person(get_session(), g.principal, person_id))

    @requires(perm.PEOPLE_READ)
    @people.doc(**IF_MATCH)
    @people.arguments(PersonPatchSchema)
    @people.response(200, PersonSchema)
    def patch(self, data, person_id):
        """Change a person. `about_me` needs people:about-me (care coordinators and peer
        workers); every other field needs people:write."""
        return _person_response(ops.update_person(get_session(), g.principal, person_id, data))


@people.route("/<int:person_id>/consents")
class PersonConsents(MethodView):
    @requires(perm.PEOPLE_READ)
    @people.arguments(ConsentPageArgsSchema, location="query")
    @people.response(200, ConsentPageSchema)
    def get(self, args, person_id):
        """The person's consents (VCSE callers: those naming their organisation)."""
        items, next_after = ops.list_consents(get_session(), g.principal, person_id, **args)
        return {"items": items, "next_after": next_after}

    @requires(perm.CONSENT_WRITE)
    @idempotent
    @people.doc(**IDEMPOTENCY_KEY)
    @people.arguments(ConsentCreateSchema)
    @people.response(201, ConsentSchema)
    def post(self, data, person_id):
        """Record the person's consent to share with a named organisation for a purpose."""
        consent = ops.record_consent(get_session(), g.principal, person_id, data)
        return consent, 201, {"Location": f"/api/v1/people/{person_id}/consents"}


@consents.route("/<int:consent_id>/withdraw")
class ConsentWithdraw(MethodView):
    @requires(perm.CONSENT_WRITE)
    @consents.arguments(ConsentWithdrawSchema)
    @consents.response(200, ConsentSchema)
    def post(self, data, consent_id):
        """Withdraw consent: open referrals to the organisation are cancelled, its users lose
        access at once, and an active journey's team is flagged to re-plan."""
        return ops.withdraw_consent(get_session(), g.principal, consent_id, data["reason"])


blueprints = [people, consents]


def register(app, api) -> None:  # noqa: ARG001
    from service import csrf

    for blueprint in blueprints:
        api.register_blueprint(blueprint)
        csrf.exempt(blueprint)
