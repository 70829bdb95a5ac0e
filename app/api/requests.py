"""What each view of the JSON API accepts and answers, declared once with `@operation`.

The declaration validates the path, the query string and the JSON body with pydantic models and hands them
to the view, serialises the view's answer through the response model of its status, and is what
app/api/openapi.py documents: the checks and the document cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, wraps
from typing import Annotated, Any, Mapping, NamedTuple, TypeVar, Union

from flask import Response, request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from werkzeug.exceptions import BadRequest

from app.api.errors import ApiError

Model = TypeVar("Model", bound=BaseModel)


class NoParameters(BaseModel):
    """The query string of a view that takes no parameters."""


class ResponseModel(BaseModel):
    """A response shape: a key the model does not know is a bug of the view, never passed on."""

    model_config = ConfigDict(extra="forbid")


def query_args(model: type[Model]) -> Model:
    """The query string validated by `model`; an unknown or repeated parameter is a 400 naming it."""
    args = {}
    for key, values in request.args.lists():
        if key not in model.model_fields:
            raise ApiError(400, "unknown_parameter", f"unknown parameter {key!r}", key)
        if len(values) > 1:
            raise ApiError(400, "repeated_parameter", f"parameter {key!r} given more than once", key)
        args[key] = values[0]
    return model.model_validate(args)


def json_body() -> Any:
    """The parsed JSON body: 415 unless it is JSON, 400 if it does not parse (413 beyond MAX_CONTENT_LENGTH)."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        return request.get_json()
    except BadRequest:
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None


class BatchItems(NamedTuple):
    items: list
    single: bool  # the body was one object, not a list

    def field(self, position: int, name: str) -> str:
        """How an error names field `name` of item `position`: with the position only in a list (as pydantic)."""
        return name if self.single else f"{position}.{name}"


@dataclass(frozen=True)
class Batch:
    """A JSON body holding one `model` object or a list of 1 to `max_items` of them."""

    model: type[BaseModel]
    max_items: int
    noun: str  # what one item is called in messages

    @property
    def schema_type(self) -> Any:
        return Union[self.model, Annotated[list[self.model], Field(min_length=1, max_length=self.max_items)]]

    @cached_property
    def _list_adapter(self) -> TypeAdapter:
        return TypeAdapter(list[self.model])

    def parse(self, body: Any) -> BatchItems:
        if not isinstance(body, list):
            return BatchItems([self.model.model_validate(body)], True)
        if not body:
            raise ApiError(422, "empty_batch", f"send one {self.noun} or a non-empty list")
        if len(body) > self.max_items:
            raise ApiError(413, "batch_too_large", f"at most {self.max_items} {self.noun}s per request")
        return BatchItems(self._list_adapter.validate_python(body), False)


@dataclass(frozen=True)
class Operation:
    """What one view accepts and answers."""

    responses: Mapping[int, Any]  # status → the type of the body answered with it
    path: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | Batch | None = None  # a model body may be left empty: validated as {}
    errors: tuple[int, ...] = ()  # error statuses of this view beyond those every input can cause
    media_type: str = "application/json"  # of the `responses` (errors are always JSON)
    adapters: dict[int, TypeAdapter] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "adapters", {status: TypeAdapter(kind) for status, kind in self.responses.items()})

    @property
    def error_statuses(self) -> list[int]:
        """Every error status the input handling can answer (401/403 come from the API key, see app/api/auth.py).

        400: an unknown or repeated parameter, or a body that is not JSON; 503: Milvus or the event database
        does not answer (app/api/errors.py), which any view can meet since every one reads them.
        """
        statuses = {400, 503, *self.errors}
        if self.path or self.query or self.body is not None:
            statuses.add(422)
        if self.body is not None:
            statuses |= {413, 415}
        return sorted(statuses - set(self.responses))

    def read_body(self) -> Any:
        if isinstance(self.body, Batch):
            return self.body.parse(json_body())
        return self.body.model_validate(json_body() if request.get_data() else {})

    def serialise(self, result: Any) -> Any:
        """The view's answer with its body passed through the response model of its status."""
        body, *rest = result if isinstance(result, tuple) else (result,)
        adapter = self.adapters.get(rest[0] if rest else 200)
        if adapter is None or isinstance(body, Response):
            return result
        try:
            body = adapter.dump_python(adapter.validate_python(body), mode="json", exclude_unset=True)
        except ValidationError as exc:  # the view's bug: a 500, not the client's 422
            raise TypeError(f"the response does not match its model: {exc}") from exc
        return (body, *rest) if rest else body


def operation(responses: Mapping[int, Any], *, path: type[BaseModel] | None = None,
              query: type[BaseModel] | None = None, body: type[BaseModel] | Batch | None = None,
              errors: tuple[int, ...] = (), media_type: str = "application/json"):
    """Declare a view's input and answers. The view gets the validated path values as keyword arguments,
    `params` (the query model) when `query` is given and `body` (a model, or BatchItems) when `body` is.
    A view answering another `media_type` than JSON returns a Response, passed on as it is."""
    spec = Operation(responses, path, query, body, errors, media_type)

    def decorate(view):
        @wraps(view)
        def run(**path_values):
            kwargs = path.model_validate(path_values).model_dump() if path else path_values
            params = query_args(query or NoParameters)
            if query:
                kwargs["params"] = params
            if body is not None:
                kwargs["body"] = spec.read_body()
            return spec.serialise(view(**kwargs))

        run.operation = spec
        return run

    return decorate
