"""gunicorn settings; every value can be overridden by the environment variable named beside it.

Each worker creates its Milvus clients and loads its models after the fork (preload_app is off), and the
workers share one store through MILVUS_URI: a Milvus server, or the Lite server `make run` starts.
"""
import glob
import os
import shutil
import tempfile

bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
# Worker processes. An embedded Milvus Lite file (no MILVUS_URI) can be opened by one process only: 1 worker
# then; 2 when MILVUS_URI names a server. Each worker holds its own models (~780 MB RSS with NCF, see
# docs/operations.md).
workers = int(os.environ.get("WEB_CONCURRENCY") or (2 if os.environ.get("MILVUS_URI") else 1))
# Threads per worker (gthread): requests wait on Milvus and SQL much of their time.
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# A worker silent for this long is killed and replaced (seeding large batches of products takes long).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
# On SIGTERM, workers finish their requests for up to this long before being killed.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# Seconds an idle keep-alive connection stays open (behind a proxy, keep it above the proxy's own).
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# The longest valid query string (a 512-character query and 128-character filters, percent-encoded UTF-8) is
# longer than gunicorn's default 4094-byte request line and even its 8190 maximum, which would answer 414 in
# HTML; 0 lifts the limit to gunicorn's 1 MB buffer, and the app answers what is too long with a JSON 422.
limit_request_line = int(os.environ.get("GUNICORN_LIMIT_REQUEST_LINE", "0"))
preload_app = False  # Milvus clients and models are created in each worker, after the fork
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # a file, "-" (stdout) or empty: no access log
# gunicorn's default plus the time taken (ms) and the worker's pid
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms pid=%(p)s'
errorlog = "-"
raw_env = ["HF_HUB_OFFLINE=1", "TOKENIZERS_PARALLELISM=false"]
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # see app/api/metrics.py


def on_starting(server):
    """Give the workers an empty directory for their metrics: PROMETHEUS_MULTIPROC_DIR if set (emptied), else a
    temporary one, removed on exit. Set before any worker imports prometheus_client."""
    given = os.environ.get(METRICS_DIR_VARIABLE)
    if given:
        for stale in glob.glob(os.path.join(given, "*.db")):
            os.remove(stale)
    else:
        server.metrics_dir = os.environ[METRICS_DIR_VARIABLE] = tempfile.mkdtemp(prefix="gunicorn-metrics-")


def post_worker_init(worker):
    """Open the store and load the products' flags before the worker takes requests (Resources.warm_up)."""
    from app.core.resources import resources

    app = worker.wsgi
    with app.app_context():
        resources().warm_up()


def worker_exit(server, worker):
    """Close the worker's Milvus client and SQL engine as it stops (if its app loaded)."""
    from app.core.resources import EXTENSION_KEY

    resources = getattr(getattr(worker, "wsgi", None), "extensions", {}).get(EXTENSION_KEY)
    if resources is not None:
        resources.close()


def child_exit(server, worker):
    """A worker exited: its gauges (the models it served) no longer count; its counters still do."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if getattr(server, "metrics_dir", None):
        shutil.rmtree(server.metrics_dir, ignore_errors=True)
