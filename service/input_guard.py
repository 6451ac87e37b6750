"""Text no database column can hold is refused at the edge, for every route.

PostgreSQL text cannot contain NUL, and a lone UTF-16 surrogate (which JSON's `\\ud800` escapes
can produce) cannot be encoded for any database. Checked once here for query strings, forms and
JSON bodies, so no handler passes such a value on to a 500; the answer is a 422 naming the field.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, request

from service.errors import Invalid

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_MESSAGE = "Remove the NUL or unpaired surrogate character"


def _unstorable_paths(value: Any, path: str) -> list[str]:
    if isinstance(value, str):
        return [path] if _UNSTORABLE.search(value) else []
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            found += [name] if _UNSTORABLE.search(str(key)) else _unstorable_paths(item, name)
        return found
    if isinstance(value, list):
        found = []
        for index, item in enumerate(value):
            found += _unstorable_paths(item, f"{path}.{index}" if path else str(index))
        return found
    return []


def _may_hold_unstorable(body: bytes) -> bool:
    """False when no value parsed from this JSON body can hold NUL or a lone surrogate, so the
    walk is skipped (most bodies): it is strict UTF-8, which cannot encode a surrogate, with no
    NUL byte and no `\\u` escape. (JSON parsing of bytes lets UTF-8-encoded surrogates through,
    and other encodings have NUL bytes: those bodies are walked.)"""
    if b"\\u" in body or b"\x00" in body:
        return True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def check_request() -> None:
    found: list[str] = []
    for name, value in request.args.items(multi=True):
        found += [f"query.{name}"] if _UNSTORABLE.search(name + value) else []
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for name, value in request.form.items(multi=True):
            found += [name] if _UNSTORABLE.search(name + value) else []
    elif request.is_json and _may_hold_unstorable(request.get_data(cache=True)):
        found += _unstorable_paths(request.get_json(silent=True), "")
    if found:
        # Field names only: never echo the value back.
        raise Invalid("The request has text that cannot be stored.",
                      errors={name[:100]: [_MESSAGE] for name in found[:20]})


def init_app(app: Flask) -> None:
    app.before_request(check_request)
