"""Pages validate forms with the same marshmallow schemas as the API (one validation layer)."""

from __future__ import annotations

from typing import Any

from flask import render_template
from marshmallow import Schema, ValidationError
from werkzeug.datastructures import MultiDict

from service.errors import Invalid


def form_values(form: MultiDict, *, lists: tuple[str, ...] = ()) -> dict[str, Any]:
    """Form fields as a dict for a schema: blanks are missing, `lists` fields keep every value."""
    values: dict[str, Any] = {}
    for name in form:
        if name == "csrf_token":
            continue
        if name in lists:
            values[name] = [v for v in form.getlist(name) if v != ""]
        else:
            value = form.get(name, "").strip()
            if value != "":
                values[name] = value
    return values


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages → {"field": ["message", ...]} keyed by form field name."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}{key}" if not prefix else f"{prefix}-{key}"
            if isinstance(value, dict):
                flat.update(flatten_errors(value, name))
            else:
                flat[name] = [str(m) for m in (value if isinstance(value, list) else [value])]
    else:
        flat[prefix or "_form"] = [str(messages)]
    return flat


def load_form(schema: Schema, form: MultiDict, *, lists: tuple[str, ...] = ()
              ) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    """(data, {}) when valid, (None, errors) when not; never raises for user input."""
    try:
        return schema.load(form_values(form, lists=lists)), {}
    except ValidationError as exc:
        return None, flatten_errors(exc.messages)


def errors_from(exc: Invalid) -> dict[str, list[str]]:
    """An operation's Invalid error as form errors (field errors, or one message for the form)."""
    if exc.errors:
        return flatten_errors(exc.errors)
    return {"_form": [exc.detail]}


def reshow(template: str, errors: dict[str, list[str]], status: int = 422, **context):
    """Re-show a form with the NHS.UK error summary, keeping what was typed."""
    return render_template(template, errors=errors, **context), status
