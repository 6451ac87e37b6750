"""HTTP rules shared by the API areas: ETags with If-Match, and Idempotency-Key replay."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable

import sqlalchemy as sa
from flask import Response, g, request

from models import IdempotencyRecord
from service.db import get_session
from service.errors import Invalid, PreconditionFailed, PreconditionRequired

_REPLAYED_HEADERS = ("Content-Type", "Location", "ETag")

# OpenAPI header parameters, for `@blueprint.doc(**IF_MATCH)` and `@blueprint.doc(**IDEMPOTENCY_KEY)`.
IF_MATCH = {"parameters": [{"in": "header", "name": "If-Match", "required": True,
                            "schema": {"type": "string"},
                            "description": "The ETag you last read (missing: 428, stale: 412)"}]}
IDEMPOTENCY_KEY = {"parameters": [{"in": "header", "name": "Idempotency-Key", "required": False,
                                   "schema": {"type": "string", "maxLength": 200},
                                   "description": "A retry with the same key returns the first "
                                                  "response; the same key with another body: 422"}]}


def etag_of(kind: str, record_id: int, version: int) -> str:
    return f'"{kind}-{record_id}-v{version}"'


def content_etag(kind: str, record_id: int, values: dict) -> str:
    """An ETag for a record without a version column: a digest of what it holds."""
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode())
    return f'"{kind}-{record_id}-{digest.hexdigest()[:16]}"'


def require_if_match(kind: str, record_id: int, version: int) -> None:
    """State changes must name the version they saw: missing → 428, stale → 412."""
    require_if_match_tag(etag_of(kind, record_id, version))


def require_if_match_tag(current: str) -> None:
    """The request's If-Match must offer the current ETag: missing → 428, stale → 412."""
    header = request.headers.get("If-Match")
    if not header:
        raise PreconditionRequired("Send the If-Match header with the ETag you last read.")
    offered = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    if current not in offered and "*" not in offered:
        raise PreconditionFailed("The record has changed since you read it. Read it again.",
                                 headers={"ETag": current})


def _request_fingerprint() -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(request.path.encode())
    body = request.get_data(cache=True)
    try:  # the same JSON in another key order is the same request
        body = json.dumps(json.loads(body), sort_keys=True).encode()
    except ValueError:
        pass
    digest.update(body)
    return digest.hexdigest()


def idempotent(view: Callable) -> Callable:
    """Creating POSTs: a retry with the same Idempotency-Key returns the first response.

    The same key with another body is refused (422). On PostgreSQL an advisory lock on the key
    serialises parallel retries, so the later ones wait and replay instead of creating twice.
    Put it above flask-smorest's decorators so it sees the final response.
    """

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        if not (1 <= len(key) <= 200) or not key.isprintable():
            raise Invalid("Idempotency-Key must be 1 to 200 printable characters.",
                          errors={"Idempotency-Key": ["Use 1 to 200 printable characters"]})
        db = get_session()
        actor = g.principal.actor_key
        if db.get_bind().dialect.name == "postgresql":
            db.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                       {"k": f"{actor}|{key}"})
        fingerprint = _request_fingerprint()
        previous = db.get(IdempotencyRecord, (actor, key))
        if previous is not None:
            if previous.request_hash != fingerprint or previous.endpoint != request.endpoint:
                raise Invalid("This Idempotency-Key was used for a different request.",
                              errors={"Idempotency-Key": ["Already used for a different request"]})
            response = Response(previous.response_body, status=previous.status_code)
            for name, value in json.loads(previous.response_headers).items():
                response.headers[name] = value
            response.headers["Idempotent-Replayed"] = "true"
            return response
        response = view(*args, **kwargs)
        if isinstance(response, Response) and 200 <= response.status_code < 300:
            db.add(IdempotencyRecord(
                actor=actor, key=key, endpoint=request.endpoint or "", request_hash=fingerprint,
                status_code=response.status_code, response_body=response.get_data(as_text=True),
                response_headers=json.dumps({h: response.headers[h] for h in _REPLAYED_HEADERS
                                             if h in response.headers}),
            ))
            db.flush()
        return response

    return wrapper
