"""Production server settings: `gunicorn -c gunicorn.conf.py 'service:create_app()'`.

Every value can be overridden by the environment so one file serves every host.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "sync" if threads == 1 else "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
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
