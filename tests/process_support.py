"""Helpers for the tests that run Stepdown as real processes (gunicorn app servers and outbox
workers) and put faults between them and PostgreSQL: free loopback ports, started processes that
are always killed, a loopback TCP proxy that can cut the database away, and HTTP receivers for
webhooks. (No tests here.)"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECRET_KEY = "process-test-secret-key-0123456789-abcdef"  # noqa: S105 - a test value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               interval: float = 0.1):
    """Poll until predicate() is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def service_env(database_url: str, token_key_file: str, **extra: str) -> dict[str, str]:
    """The environment every process of one deployment shares (one secret, one token key)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TEST_", "STEPDOWN_", "PYTEST", "GUNICORN_"))}
    env.update({
        "STEPDOWN_ENV": "test", "FLASK_APP": "service", "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET_KEY, "TOKEN_PRIVATE_KEY_FILE": token_key_file,
        "BASE_URL": "http://127.0.0.1", "RATELIMIT_ENABLED": "false", "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


class Processes:
    """Processes started for one test, each in its own process group, all killed at the end."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log,  # noqa: S603
                                   stderr=subprocess.STDOUT, start_new_session=True)
        process.log_file = log  # type: ignore[attr-defined]
        process.name = name  # type: ignore[attr-defined]
        self.started.append(process)
        return process

    def run(self, args: list[str], env: dict[str, str], timeout: float = 60) -> str:
        """A command that must finish (migrations, demo data); its output."""
        done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True,  # noqa: S603
                              timeout=timeout, check=False)
        output = (done.stdout + done.stderr).decode(errors="replace")
        assert done.returncode == 0, output[-3000:]
        return output

    def app_server(self, name: str, env: dict[str, str]) -> str:
        """A gunicorn app host with the production settings file; its base URL once ready."""
        port = free_port()
        env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "1"}
        process = self.start(name, [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py",
                                    "service:create_app()"], env)
        url = f"http://127.0.0.1:{port}"

        def ready():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited:\n{self.output(process)[-3000:]}")
            try:
                return requests.get(f"{url}/readyz", timeout=5).status_code == 200
            except (requests.ConnectionError, requests.Timeout):  # still booting its worker
                return False

        wait_until(ready, 40, f"{name} to be ready", interval=0.2)
        return url

    def worker(self, name: str, env: dict[str, str]) -> subprocess.Popen:
        return self.start(name, [str(BIN / "flask"), "--app", "service", "worker",
                                 "--idle-seconds", "0.2"], env)

    def output(self, process: subprocess.Popen) -> str:
        process.log_file.flush()
        return (self.log_dir / f"{process.name}.log").read_text(errors="replace")

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        """SIGKILL the process and its children (it leads its own process group)."""
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            process.wait(timeout=10)
        finally:
            process.log_file.close()

    def kill_all(self) -> None:
        for process in reversed(self.started):
            self.kill(process)
        self.started.clear()


# ---- Signing in over real HTTP ------------------------------------------------------------

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(http: requests.Session, url: str) -> str:
    response = http.get(url, timeout=10)
    assert response.status_code == 200, response.status_code
    found = _CSRF.search(response.text)
    assert found, f"no CSRF token on {url}"
    return found.group(1)


def sign_in(base_url: str, email: str, password: str) -> requests.Session:
    """A browser-like session signed in on this host; it sends X-CSRFToken on API writes."""
    http = requests.Session()
    token = csrf_token(http, f"{base_url}/login")
    response = http.post(f"{base_url}/login", timeout=10, allow_redirects=False,
                         data={"email": email, "password": password, "csrf_token": token})
    assert response.status_code == 302, (response.status_code, response.text[:500])
    return http


def use_csrf_from(http: requests.Session, base_url: str) -> None:
    """Read the session's CSRF token from a page served by `base_url` and send it from now on."""
    http.headers["X-CSRFToken"] = csrf_token(http, f"{base_url}/")


# ---- A loopback TCP proxy in front of PostgreSQL ------------------------------------------

class TcpProxy:
    """127.0.0.1:<port> forwarding to the database. `cut()` drops every open connection and
    answers new ones by closing them (the database is away); `restore()` forwards again."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.up = True
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url_for(self, database_url: str) -> str:
        return sa.engine.make_url(database_url).set(host="127.0.0.1", port=self.port) \
            .render_as_string(hide_password=False)

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open.update((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                self._close(s)

    def _close(self, s: socket.socket) -> None:
        with self._lock:
            self._open.discard(s)
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def cut(self) -> None:
        self.up = False
        with self._lock:
            sockets = list(self._open)
        for s in sockets:
            self._close(s)

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self._stopping = True
        self.cut()
        try:  # wake the accept() so the thread sees it is stopping
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            pass
        self._listener.close()
        self._thread.join(timeout=5)


# ---- Webhook receivers ----------------------------------------------------------------------

class WebhookReceiver:
    """An HTTP server on loopback recording each delivery's X-Stepdown-Delivery id. With
    `stall_first`, the first delivery is accepted and never answered until `close()`."""

    def __init__(self, stall_first: bool = False):
        self.deliveries: list[str] = []
        self.events: list[str] = []
        self.stall_first = stall_first
        self.first_arrived = threading.Event()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append(self.headers["X-Stepdown-Delivery"])
                receiver.events.append(self.headers["X-Stepdown-Event"])
                if receiver.stall_first and not receiver.first_arrived.is_set():
                    receiver.first_arrived.set()
                    receiver._release.wait(60)
                    return
                receiver.first_arrived.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/stepdown"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def running_processes(app, tmp_path):  # noqa: ARG001 - torn down before the app empties the database
    """App hosts, workers and receivers started by a test; every one killed afterwards."""
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.kill_all()
