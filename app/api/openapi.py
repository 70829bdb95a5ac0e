"""GET /openapi.json: the OpenAPI 3.1 document of the JSON API, generated from the views' `@operation`
declarations (the same pydantic models that validate requests and serialise responses)."""
from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from flask import Blueprint, Flask, current_app
from pydantic import BaseModel, TypeAdapter

from app.api.errors import ErrorResponse
from app.api.requests import Batch, Operation, operation

bp = Blueprint("openapi", __name__)

TITLE = "Hybrid search & recommendation service"
VERSION = "1"
REF_TEMPLATE = "#/components/schemas/{model}"
SECURITY_SCHEMES = {
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "bearerToken": {"type": "http", "scheme": "bearer"},
}
_ERROR_KEY = "error"


@bp.get("/openapi.json")
@operation({200: dict[str, Any]})
def openapi_json():
    """This document."""
    if "openapi" not in current_app.extensions:  # built once per process: the routes do not change
        current_app.extensions["openapi"] = openapi_document(current_app)
    return current_app.extensions["openapi"]


def openapi_document(app: Flask) -> dict:
    """Every view declared with `@operation` (the web page and static files are not part of the API)."""
    operations = [
        (_openapi_path(rule.rule), method.lower(), rule.endpoint, app.view_functions[rule.endpoint])
        for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule)
        if hasattr(app.view_functions[rule.endpoint], "operation")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
    ]
    schemas, components = _schemas([view.operation for *_, view in operations])
    paths: dict[str, dict] = {}
    for path, method, endpoint, view in operations:
        paths.setdefault(path, {})[method] = _operation(endpoint, view, schemas, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION},
        "paths": paths,
        "components": {"schemas": dict(sorted(components.items())), "securitySchemes": SECURITY_SCHEMES},
    }


def _openapi_path(rule: str) -> str:
    """/products/<product_id> → /products/{product_id}"""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _schemas(specs: list[Operation]) -> tuple[dict, dict]:
    """The schema of every body and response type, keyed by (id(spec), status or "body"), and the components
    they refer to (each model defined once)."""
    inputs = [(_ERROR_KEY, "serialization", TypeAdapter(ErrorResponse))]
    for spec in specs:
        if spec.body is not None:
            body_type = spec.body.schema_type if isinstance(spec.body, Batch) else spec.body
            inputs.append(((id(spec), "body"), "validation", TypeAdapter(body_type)))
        inputs += [((id(spec), status), "serialization", adapter) for status, adapter in spec.adapters.items()]
    keyed, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF_TEMPLATE)
    return {key: schema for (key, _mode), schema in keyed.items()}, definitions.get("$defs", {})


def _operation(endpoint: str, view, schemas: dict, components: dict) -> dict:
    spec: Operation = view.operation
    summary, _, description = (view.__doc__ or endpoint).strip().partition("\n")
    entry: dict[str, Any] = {"operationId": endpoint, "tags": [endpoint.split(".")[0]], "summary": summary.strip()}
    if description.strip():
        entry["description"] = " ".join(description.split())
    parameters = _parameters(spec.path, "path", components) + _parameters(spec.query, "query", components)
    if parameters:
        entry["parameters"] = parameters
    if spec.body is not None:
        entry["requestBody"] = {
            "required": isinstance(spec.body, Batch) or any(f.is_required() for f in spec.body.model_fields.values()),
            "content": {"application/json": {"schema": schemas[(id(spec), "body")]}},
        }
    responses = {status: schemas[(id(spec), status)] for status in spec.responses}
    error_statuses = spec.error_statuses
    if getattr(view, "requires_api_key", False):
        entry["security"] = [{name: []} for name in SECURITY_SCHEMES]
        error_statuses = sorted({*error_statuses, 401, 403})
    responses.update((status, schemas[_ERROR_KEY]) for status in error_statuses)
    media_types = {status: spec.media_type for status in spec.responses}  # errors are JSON
    entry["responses"] = {
        str(status): {"description": HTTPStatus(status).phrase,
                      "content": {media_types.get(status, "application/json"): {"schema": schema}}}
        for status, schema in sorted(responses.items())
    }
    return entry


def _parameters(model: type[BaseModel] | None, location: str, components: dict) -> list[dict]:
    """One parameter per field of a path or query model."""
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    components.update(schema.get("$defs", {}))
    required = set(schema.get("required", ()))
    parameters = []
    for name, field_schema in schema["properties"].items():
        field_schema = _not_null({key: value for key, value in field_schema.items() if key != "title"})
        description = field_schema.pop("description", None)
        parameter = {"name": name, "in": location, "required": name in required, "schema": field_schema}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _not_null(schema: dict) -> dict:
    """An optional parameter's schema without its null branch: absent, not null, is how it is left out."""
    branches = [branch for branch in schema.get("anyOf", ()) if branch != {"type": "null"}]
    if len(branches) == len(schema.get("anyOf", ())):
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf" and (key, value) != ("default", None)}
    return {**branches[0], **rest} if len(branches) == 1 else {**rest, "anyOf": branches}
