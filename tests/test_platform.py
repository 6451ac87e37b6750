"""The platform: configuration, health, errors, request ids, one commit per request."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from service import create_app
from service.config import ConfigError, load_settings


def test_production_refuses_default_secret_key():
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings(environ={"STEPDOWN_ENV": "production",
                               "DATABASE_URL": "postgresql+psycopg://db/stepdown"})


def test_production_refuses_sqlite():
    with pytest.raises(ConfigError, match="PostgreSQL"):
        load_settings(environ={"STEPDOWN_ENV": "production", "SECRET_KEY": "x" * 40,
                               "DATABASE_URL": "sqlite:///prod.db"})


def test_bad_number_setting_names_the_variable():
    with pytest.raises(ConfigError, match="SESSION_IDLE_MINUTES must be a whole number"):
        load_settings(environ={"SESSION_IDLE_MINUTES": "half an hour"})


def test_unknown_environment_is_refused():
    with pytest.raises(ConfigError, match="STEPDOWN_ENV"):
        load_settings(environ={"STEPDOWN_ENV": "staging"})


def test_production_settings_accepted_when_complete(tmp_path):
    settings = load_settings(environ={
        "STEPDOWN_ENV": "production", "SECRET_KEY": "s" * 40, "BASE_URL": "https://sd.example",
        "DATABASE_URL": "postgresql+psycopg://db/stepdown", "TOKEN_PRIVATE_KEY_FILE": "/k.pem"})
    assert settings.is_production


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["migrations"] == "head"


def test_readyz_is_503_when_database_unreachable(app_config, db_engine):
    config = dict(app_config, DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    app = create_app(config)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["database"] == "unreachable"


def test_readyz_is_503_when_migrations_behind(app, db_engine, client):
    with db_engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = 'old'"))
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json["migrations"] == "behind"
    finally:
        from service.migrations import head_revision

        with db_engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = :h"),
                               {"h": head_revision()})


def test_api_errors_are_problem_json_with_request_id(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body["status"] == 404 and body["title"]
    assert body["request_id"] == response.headers["X-Request-ID"]


def test_page_errors_are_html(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Page not found" in response.get_data(as_text=True)


def test_request_id_is_echoed_when_well_formed(client):
    response = client.get("/healthz", headers={"X-Request-ID": "abc123-req-0001"})
    assert response.headers["X-Request-ID"] == "abc123-req-0001"
    replaced = client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert replaced.headers["X-Request-ID"] != "<script>"


def test_unauthenticated_api_call_gets_401_with_www_authenticate(client):
    response = client.get("/api/v1/organisations")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.mimetype == "application/problem+json"


def test_api_validation_errors_name_each_field(as_user):
    admin = as_user("admin")
    response = admin.post("/api/v1/organisations", json={"kind": "charity", "name": "",
                                                         "surprise": 1})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    errors = response.json["errors"]
    assert set(errors) >= {"kind", "name", "surprise"}


def test_wrong_json_type_is_422_not_500(as_user):
    admin = as_user("admin")
    response = admin.post("/api/v1/organisations", data="[1, 2", content_type="application/json")
    assert response.status_code in (400, 422)
    assert response.mimetype == "application/problem+json"


def test_failed_request_leaves_nothing_behind(as_user, db):
    from models import Organisation

    admin = as_user("admin")
    before = len(db.exec(sa.select(Organisation)).all())
    # A duplicate ODS code fails at the database after earlier writes in the same request.
    response = admin.post("/api/v1/organisations",
                          json={"kind": "statutory", "name": "Copy", "ods_code": "RXA"})
    assert response.status_code == 409
    db.expire_all()
    assert len(db.exec(sa.select(Organisation)).all()) == before


def test_security_headers_on_pages_and_api(client):
    for path in ("/login", "/healthz", "/api/v1/openapi.json"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"


def test_metrics_need_authentication_and_report_queue_depths(client, as_user):
    assert client.get("/metrics").status_code == 302  # a page route: sign in first
    assert as_user("coordinator").get("/metrics").status_code == 403
    body = as_user("admin").get("/metrics").get_data(as_text=True)
    assert "stepdown_outbox_pending 0.0" in body
    assert "stepdown_http_requests_total" in body
