"""Blend weights and exclusions: parsed from text (query parameters, settings); weights rescaled over the
sources present."""
from __future__ import annotations

from typing import Sequence


def parse_weights(text: str, sources: Sequence[str]) -> dict[str, float]:
    """`content:0.5,collaborative:0.4,popular:0.1`: known sources, non-negative numbers, not all zero."""
    weights = {}
    for part in text.split(","):
        source, _, number = part.partition(":")
        source = source.strip()
        if source not in sources:
            raise ValueError(f"unknown source {source!r}; use {', '.join(sources)}")
        try:
            weights[source] = float(number)
        except ValueError:
            raise ValueError(f"weight of {source} is not a number") from None
        if not 0 <= weights[source] <= 1e6:
            raise ValueError(f"weight of {source} must be a non-negative number")
    if not any(weights.values()):
        raise ValueError("at least one weight must be positive")
    return weights


EXCLUDABLE = {"purchased": "purchase", "rated": "rating", "carted": "add_to_cart", "viewed": "view"}


def parse_exclude(text: str) -> tuple[str, ...]:
    """`purchased,rated` → the event types whose products are not recommended again; `none` → ()."""
    names = [name.strip() for name in str(text).split(",")]
    if names == ["none"]:
        return ()
    unknown = [name for name in names if name not in EXCLUDABLE]
    if unknown:
        raise ValueError(f"unknown exclusion {unknown[0]!r}; use none or {', '.join(EXCLUDABLE)}, comma separated")
    return tuple(sorted({EXCLUDABLE[name] for name in names}))


def effective_weights(weights: dict[str, float], available: set[str]) -> dict[str, float]:
    """The weights of the available sources, rescaled to sum to 1 (a missing source's weight is shared)."""
    usable = {source: weight for source, weight in weights.items() if source in available and weight > 0}
    total = sum(usable.values())
    if not total:
        return {source: 1.0 / len(available) for source in sorted(available)} if available else {}
    return {source: weight / total for source, weight in usable.items()}
