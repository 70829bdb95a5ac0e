"""User-vector maths and weight handling, without a store."""
import random

import numpy as np
import pytest

from app.config.weights import effective_weights
from app.core.user_vectors import accumulate
from app.storage.events import Event

WEIGHTS = {"view": 0.1, "add_to_cart": 0.3, "purchase": 0.6, "rating": 0.2}
DIM = 8


def random_stream(rng: random.Random, products: dict, count: int) -> list[tuple[int, Event]]:
    events = []
    for row_id in range(1, count + 1):
        kind = rng.choice(list(WEIGHTS))
        events.append((row_id, Event(f"e{row_id}", "u1", rng.choice(list(products)), kind,
                                     4.0 if kind == "rating" else None, 1_700_000_000 + rng.uniform(0, 90 * 86400))))
    return events


@pytest.mark.parametrize("half_life_days", [0, 7])
def test_incremental_equals_full_recomputation(half_life_days):
    rng = random.Random(3)
    products = {f"p{i}": np.asarray([rng.gauss(0, 1) for _ in range(DIM)], dtype=np.float32) for i in range(20)}
    stream = random_stream(rng, products, 200)
    half_life = half_life_days * 86400.0
    full = accumulate(None, "u1", stream, products, WEIGHTS, half_life, DIM)
    incremental, position = None, 0
    while position < len(stream):
        step = rng.randint(1, 25)
        incremental = accumulate(incremental, "u1", stream[position:position + step], products, WEIGHTS, half_life, DIM)
        position += step
    assert np.allclose(incremental.vector, full.vector, rtol=1e-4, atol=1e-5)
    assert incremental.counts == full.counts and sum(full.counts.values()) == 200
    assert incremental.vector_time == full.vector_time == max(event.occurred_at for _, event in stream)
    again = accumulate(incremental, "u1", stream[:50], products, WEIGHTS, half_life, DIM)
    assert again is incremental  # already-applied rows are skipped, never counted twice


def test_weighted_sum_without_decay():
    products = {"a": np.eye(DIM, dtype=np.float32)[0], "b": np.eye(DIM, dtype=np.float32)[1]}
    events = [(1, Event("1", "u", "a", "view", None, 10.0)), (2, Event("2", "u", "b", "purchase", None, 20.0)),
              (3, Event("3", "u", "a", "add_to_cart", None, 30.0)), (4, Event("4", "u", "gone", "view", None, 40.0))]
    user = accumulate(None, "u", events, products, WEIGHTS, 0.0, DIM)
    assert np.allclose(user.vector[:2], [0.4, 0.6]) and user.counts["view"] == 2


def test_decay_halves_an_event_one_half_life_older():
    products = {"a": np.eye(DIM, dtype=np.float32)[0], "b": np.eye(DIM, dtype=np.float32)[1]}
    day = 86400.0
    events = [(1, Event("1", "u", "a", "view", None, 0.0)), (2, Event("2", "u", "b", "view", None, 7 * day))]
    user = accumulate(None, "u", events, products, WEIGHTS, 7 * day, DIM)
    assert np.allclose(user.vector[:2], [0.05, 0.1])


def test_effective_weights_renormalise_over_available_sources():
    weights = {"content": 0.5, "collaborative": 0.4, "popular": 0.1}
    assert effective_weights(weights, {"content", "popular"}) == pytest.approx({"content": 0.5 / 0.6, "popular": 0.1 / 0.6})
    assert effective_weights({"collaborative": 1.0}, {"content", "popular"}) == {"content": 0.5, "popular": 0.5}
