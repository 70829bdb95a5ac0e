"""Reading and validating request input with pydantic models."""
from __future__ import annotations

from typing import TypeVar

from flask import request
from pydantic import BaseModel

from .errors import ApiError

Model = TypeVar("Model", bound=BaseModel)


def query_args(model: type[Model]) -> Model:
    """The query string validated by `model`; a repeated parameter is an error."""
    args = {}
    for key, values in request.args.lists():
        if len(values) > 1:
            raise ApiError(400, "repeated_parameter", f"parameter {key!r} given more than once", key)
        args[key] = values[0]
    return model.model_validate(args)


def json_body():
    """The parsed JSON body: 415 unless it is JSON, 400 if it does not parse."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "invalid_json", "the body is not valid JSON")
    return body
