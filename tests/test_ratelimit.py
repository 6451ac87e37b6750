"""Rate limits on sign-in and the token endpoint: 429 with Retry-After, problem+json under
/api and /oauth, an HTML page elsewhere. The shared fixture app runs with limits off."""

from __future__ import annotations

import pytest

from service import create_app
from service.auth.access import public
from service.ratelimit import limiter


@pytest.fixture
def limited_app(app_config, db_engine):
    app = create_app(dict(app_config, RATELIMIT_ENABLED=True))
    app.config["TESTING"] = True
    yield app
    app.extensions["stepdown.engine"].dispose()


def _login(client, ip="198.51.100.7"):
    return client.post("/login", data={"email": "nobody@example.org", "password": "guess"},
                       environ_base={"REMOTE_ADDR": ip})


def _token(client, ip="198.51.100.7"):
    return client.post("/oauth/token", data={"grant_type": "client_credentials",
                                             "client_id": "nobody", "client_secret": "guess"},
                       environ_base={"REMOTE_ADDR": ip})


def _retry_after(response) -> int:
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= 61  # the window plus rounding up
    return seconds


def test_sign_in_is_limited_to_10_a_minute_per_address(limited_app):
    client = limited_app.test_client()
    for _ in range(10):
        assert _login(client).status_code == 200  # the form again, with a message
    response = _login(client)
    assert response.status_code == 429
    assert response.mimetype == "text/html"
    assert "Too many sign-in attempts" in response.get_data(as_text=True)
    _retry_after(response)
    # Reading the page is not limited, and another address is counted on its own.
    assert client.get("/login", environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code == 200
    assert _login(client, ip="203.0.113.9").status_code == 200


def test_token_endpoint_is_limited_to_30_a_minute_per_address(limited_app):
    client = limited_app.test_client()
    for _ in range(30):
        assert _token(client).status_code == 401  # invalid_client, but counted
    response = _token(client)
    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == 429
    assert response.json["title"] == "Too Many Requests"
    _retry_after(response)
    assert _token(client, ip="203.0.113.9").status_code == 401


def test_other_areas_can_limit_api_routes(app_config, db_engine):
    app = create_app(dict(app_config, RATELIMIT_ENABLED=True))
    try:
        @limiter.limit("2/minute")
        @public
        def ping():
            return {"pong": True}

        app.add_url_rule("/api/v1/test-ping", "test_ping", ping)
        client = app.test_client()
        assert [client.get("/api/v1/test-ping").status_code for _ in range(3)] == [200, 200, 429]
        response = client.get("/api/v1/test-ping")
        assert response.mimetype == "application/problem+json"
        _retry_after(response)
    finally:
        app.extensions["stepdown.engine"].dispose()


def test_limits_are_off_when_disabled(app):
    client = app.test_client()
    assert app.config["RATELIMIT_ENABLED"] is False
    assert all(_login(client).status_code == 200 for _ in range(15))
    assert all(_token(client).status_code == 401 for _ in range(35))


@pytest.fixture
def redis_url(tmp_path):
    """A throwaway redis-server on a free port (skipped where redis is not installed)."""
    import shutil
    import socket
    import subprocess
    import time

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(  # noqa: S603 - a fixed local binary
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_redis_storage_counts_across_app_processes(app_config, db_engine, redis_url):
    """With redis, a restarted (or another) app process sees the same counters."""
    config = dict(app_config, RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI=redis_url)
    first = create_app(config)
    try:
        client = first.test_client()
        assert all(_login(client).status_code == 200 for _ in range(6))
    finally:
        first.extensions["stepdown.engine"].dispose()
    second = create_app(config)  # a fresh limiter storage, as in another process
    try:
        client = second.test_client()
        assert all(_login(client).status_code == 200 for _ in range(4))
        assert _login(client).status_code == 429
    finally:
        second.extensions["stepdown.engine"].dispose()


def test_unknown_rate_limit_storage_is_refused_at_start():
    from service.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="RATELIMIT_STORAGE_URI"):
        load_settings(environ={"RATELIMIT_STORAGE_URI": "mongodb://db"})


def test_searching_by_nhs_number_is_limited_per_caller(demo, limited_app):
    # `demo` builds the shared (unlimited) app first: the limiter follows the last app made.
    def signed_in(email):
        client = limited_app.test_client()
        response = client.post("/login", data={"email": email, "password": "stepdown-demo"},
                               environ_base={"REMOTE_ADDR": "198.51.100.20"})
        assert response.status_code == 302
        return client

    coordinator = signed_in("coordinator@demo.stepdown.test")
    body = {"nhs_number": "9434765919"}
    for _ in range(60):
        assert coordinator.post("/api/v1/people/search", json=body).status_code == 200
    response = coordinator.post("/api/v1/people/search", json=body)
    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    _retry_after(response)
    # Counted per caller, not per address: a colleague on the same network can still search.
    duty = signed_in("duty@demo.stepdown.test")
    assert duty.post("/api/v1/people/search", json=body).status_code == 200
