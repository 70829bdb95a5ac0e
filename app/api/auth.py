"""API key protection of write and admin endpoints: on when API_KEY is set, open otherwise."""
from __future__ import annotations

import hmac
from functools import wraps

from flask import request

from app.api.errors import error_response
from app.core.resources import resources


def require_api_key(view):
    """The view answers only requests carrying `X-API-Key: <key>` or `Authorization: Bearer <key>`.

    No key: 401 `missing_api_key` (with a `WWW-Authenticate` challenge); another key: 403 `invalid_api_key`.
    """
    @wraps(view)
    def guarded(*args, **kwargs):
        expected = resources().settings.api_key
        if expected:
            presented = presented_api_key()
            if not presented:
                response, status = error_response(401, "missing_api_key",
                                                  "send the API key as X-API-Key or Authorization: Bearer")
                response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
                return response, status
            if not hmac.compare_digest(presented.encode(), expected.encode()):
                return error_response(403, "invalid_api_key", "the API key is not valid")
        return view(*args, **kwargs)

    guarded.requires_api_key = True  # read by app/api/openapi.py
    return guarded


def presented_api_key() -> str:
    """The key the request carries (X-API-Key first, then a Bearer token); empty if none."""
    key = request.headers.get("X-API-Key", "").strip()
    if key:
        return key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
