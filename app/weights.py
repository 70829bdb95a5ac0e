"""Blend weights: parsed from text (query parameters, settings) and rescaled over the sources present."""
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


def effective_weights(weights: dict[str, float], available: set[str]) -> dict[str, float]:
    """The weights of the available sources, rescaled to sum to 1 (a missing source's weight is shared)."""
    usable = {source: weight for source, weight in weights.items() if source in available and weight > 0}
    total = sum(usable.values())
    if not total:
        return {source: 1.0 / len(available) for source in sorted(available)} if available else {}
    return {source: weight / total for source, weight in usable.items()}
