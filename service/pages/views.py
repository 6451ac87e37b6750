"""Pages: the landing page for each role."""

from __future__ import annotations

from flask import Blueprint, g, render_template

from service.auth.access import requires

bp = Blueprint("pages", __name__)


@bp.get("/")
@requires()
def home():
    return render_template("pages/home.html", principal=g.principal)


def register(app, api) -> None:  # noqa: ARG001
    app.register_blueprint(bp)
