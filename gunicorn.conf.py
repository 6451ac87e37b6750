"""Production server settings: `gunicorn -c gunicorn.conf.py 'service:create_app()'`.

Every value can be overridden by the environment so one file serves every host.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "sync" if threads == 1 else "gthread"
# A request still running after this is killed with its worker. Keep DB_STATEMENT_TIMEOUT_MS and
# DB_POOL_TIMEOUT_SECONDS below it, so the database or the pool ends a slow request first and
# the client gets a 503 with Retry-After instead of a dropped connection.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM (a deploy, a scale-in) finish the requests in flight before exiting.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# Each worker builds the app, and so its own database pool, after the fork: connections are
# never shared between processes.
preload_app = False
# Worker heartbeats on tmpfs where there is one: a slow or full disk must not make the arbiter
# kill healthy workers.
_TMPFS = "/dev/shm"  # noqa: S108 - gunicorn creates its heartbeat files there with mkstemp
if os.path.isdir(_TMPFS):
    worker_tmp_dir = _TMPFS
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = 200
# Behind a load balancer: trust X-Forwarded-* only from it (see PROXY_FIX_HOPS in the app).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
# Paths only: query strings could carry search terms.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(L)ss rid=%({x-request-id}o)s'
errorlog = "-"


def child_exit(server, worker):  # noqa: ARG001
    """Tidy prometheus_client's multiprocess files when a worker exits."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
