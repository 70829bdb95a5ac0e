"""gunicorn settings; every value can be overridden by the environment variable named beside it."""
import os

bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
# An embedded Milvus Lite file can be opened by one process only: keep 1 worker unless MILVUS_URI
# points at a Milvus server (see README, "Several workers").
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# The longest valid query string (a 512-character query and 128-character filters, percent-encoded UTF-8) is
# longer than gunicorn's default 4094-byte request line and even its 8190 maximum, which would answer 414 in
# HTML; 0 lifts the limit to gunicorn's 1 MB buffer, and the app answers what is too long with a JSON 422.
limit_request_line = int(os.environ.get("GUNICORN_LIMIT_REQUEST_LINE", "0"))
preload_app = False  # Milvus clients and models are created in each worker, after the fork
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
raw_env = ["HF_HUB_OFFLINE=1", "TOKENIZERS_PARALLELISM=false"]


def post_worker_init(worker):
    """Load the model and open the store before the worker takes requests."""
    from app.resources import resources

    app = worker.wsgi
    with app.app_context():
        resources().products
