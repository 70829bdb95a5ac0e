"""RowCache on its own: bounded, and a read that overlapped an invalidation is not kept."""
from app.storage.product_cache import RowCache


class Store:
    """A stand-in for Milvus: rows by id, counting the ids read."""

    def __init__(self):
        self.rows = {f"P{i}": {"product_id": f"P{i}", "active": True} for i in range(5)}
        self.reads: list[list[str]] = []

    def read(self, ids: list[str]) -> dict[str, dict]:
        self.reads.append(ids)
        return {product_id: dict(self.rows[product_id]) for product_id in ids if product_id in self.rows}


def test_keeps_at_most_size_rows_least_recently_used_out():
    store, cache = Store(), RowCache(2, 60)
    assert list(cache.get(["P0", "P1", "P9"], store.read)) == ["P0", "P1"]
    cache.get(["P0"], store.read)  # P0 used again: P1 is the least recent
    cache.get(["P2"], store.read)
    store.reads.clear()
    assert list(cache.get(["P0", "P1", "P2"], store.read)) == ["P0", "P1", "P2"]
    assert store.reads == [["P1"]]


def test_a_read_overlapping_an_invalidation_is_not_kept():
    store, cache = Store(), RowCache(10, 60)

    def read_while_written(ids):
        found = store.read(ids)  # what Milvus held before the write
        store.rows["P0"]["active"] = False
        cache.invalidate(["P0"])  # the write lands while the read is on its way
        return found

    assert cache.get(["P0"], read_while_written)["P0"]["active"] is True
    assert cache.get(["P0"], store.read)["P0"]["active"] is False  # read again, not the stale row


def test_size_zero_reads_every_time():
    store, cache = Store(), RowCache(0, 60)
    cache.get(["P0"], store.read)
    cache.get(["P0"], store.read)
    assert store.reads == [["P0"], ["P0"]]
