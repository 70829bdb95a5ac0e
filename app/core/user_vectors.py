"""A user's vector: v_u = sum over the user's events of w(type) * v_product, folded in incrementally.

With a half-life set, each event's weight decays as 2^(-age / half-life); the stored vector then refers
to `vector_time` (the user's latest event) and only its direction matters for search, so it is never
rescaled to "now".
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from app.storage.events import EVENT_TYPES, Event, decay_factor
from app.storage.users import UserVector


def accumulate(
    current: UserVector | None,
    user_id: str,
    events: Sequence[tuple[int, Event]],
    product_vectors: dict[str, np.ndarray],
    weights: dict[str, float],
    half_life_s: float,
    dimension: int,
) -> UserVector:
    """`current` with (row id, event) pairs folded in; events already folded in (by row id) are skipped.

    Events of products that no longer exist count but add nothing to the vector.
    """
    applied_through = current.applied_through if current else 0
    fresh = [(row_id, event) for row_id, event in events if row_id > applied_through]
    if current is not None and not fresh:
        return current
    times = [event.occurred_at for _, event in fresh] + ([current.vector_time] if current else [])
    reference = max(times, default=0.0)
    vector = np.zeros(dimension, dtype=np.float64)
    counts = dict.fromkeys(EVENT_TYPES, 0)
    if current is not None:
        vector += current.vector.astype(np.float64) * decay_factor(reference - current.vector_time, half_life_s)
        counts.update(current.counts)
    for _, event in fresh:
        counts[event.event_type] += 1
        product_vector = product_vectors.get(event.product_id)
        if product_vector is not None:
            weight = weights[event.event_type] * decay_factor(reference - event.occurred_at, half_life_s)
            vector += weight * product_vector
    return UserVector(
        user_id, vector.astype(np.float32), reference, counts,
        max([applied_through] + [row_id for row_id, _ in fresh]),
    )
