"""Hybrid search & recommendation service: Flask application factory."""
from __future__ import annotations

import logging
from typing import Mapping

from app.config.lite_uri import import_pymilvus

import_pymilvus()  # first: MILVUS_URI may name a Lite file, which pymilvus' import would refuse

from flask import Flask  # noqa: E402

from app.api import metrics  # noqa: E402
from app.api.errors import register_error_handlers  # noqa: E402
from app.config.settings import Settings  # noqa: E402
from app.core import resources  # noqa: E402

MAX_REQUEST_BYTES = 8 * 1024 * 1024


def create_app(config: Mapping | None = None) -> Flask:
    """Build the app. `config` may hold Flask keys and a `SETTINGS` object (default: from the environment)."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json.sort_keys = False
    if config:
        app.config.update(config)
    settings = app.config.get("SETTINGS") or Settings.from_env()
    app.config["SETTINGS"] = settings
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    resources.init_app(app, settings)
    register_error_handlers(app)
    metrics.init_app(app, settings.embedding_model)

    from app.api import openapi
    from app.api import events, experiments, facets, health, popular, products, search, training, ui, users

    for module in (health, products, search, events, users, popular, training, experiments, facets, ui, openapi):
        app.register_blueprint(module.bp)
    return app
