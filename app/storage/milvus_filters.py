"""Milvus boolean filter expressions built from user values that are escaped, never pasted.

Milvus Lite parses no expression templates, so every string value is written as a double-quoted literal
with the only escapes Milvus reads (backslash and double quote); a value with control characters cannot
be written and is refused. Numbers are formatted from real floats/ints.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

_ESCAPES = {"\\": "\\\\", '"': '\\"'}  # Milvus's parser reads no other escape as its character


def string_literal(value: str) -> str:
    """A Milvus string literal that stands for exactly `value`."""
    if any(ord(ch) < 32 for ch in value):
        raise ValueError("control characters are not allowed in filter values")
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'


def number_literal(value: float) -> str:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("filter numbers must be finite")
    return repr(number)


def field_in(field: str, values: list[str], negate: bool = False) -> str:
    return f"{field} {'not in' if negate else 'in'} [{', '.join(string_literal(v) for v in values)}]"


def field_equals(field: str, value: str) -> str:
    return f"{field} == {string_literal(value)}"


@dataclass(frozen=True)
class ProductFilter:
    """The product filters a search or recommendation call can ask for."""

    category: str | None = None
    brand: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    active: bool | None = True
    exclude_ids: tuple[str, ...] = ()

    def expression(self) -> str:
        """The filter as one Milvus expression ('' when nothing is filtered)."""
        clauses = []
        if self.category is not None:
            clauses.append(field_equals("category", self.category))
        if self.brand is not None:
            clauses.append(field_equals("brand", self.brand))
        if self.min_price is not None:
            clauses.append(f"price >= {number_literal(self.min_price)}")
        if self.max_price is not None:
            clauses.append(f"price <= {number_literal(self.max_price)}")
        if self.active is not None:
            clauses.append(f"active == {'true' if self.active else 'false'}")
        if self.exclude_ids:
            clauses.append(field_in("product_id", list(self.exclude_ids), negate=True))
        return " and ".join(clauses)
