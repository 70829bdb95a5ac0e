"""GET /: the search and recommendations page (plain HTML, JS and CSS from app/static; no build step)."""
from __future__ import annotations

from flask import Blueprint, current_app

bp = Blueprint("ui", __name__)


@bp.get("/")
def index():
    response = current_app.send_static_file("index.html")
    response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' data:"
    return response
