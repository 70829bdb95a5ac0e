"""The catalogue's flags kept in process (app/storage/product_flags.py): own writes during a scan win over it."""
from app.storage.product_flags import ProductFlags


def row(product_id: str, active: bool = True, category: str = "c") -> dict:
    return {"product_id": product_id, "active": active, "category": category, "name": "ignored"}


def test_own_writes_made_during_a_scan_win_over_what_it_read():
    stored = [row("a"), row("b"), row("c")]
    flags = None

    def scan():
        flags.put([row("a", active=False)])  # written while the scan runs (it read the old row)
        flags.forget(["b"])
        return list(stored)

    flags = ProductFlags(scan, lambda: len(stored), seconds=3600, max_products=10)
    flags.refresh()
    found, missing = flags.get(["a", "b", "c", "d"])
    assert found == {"a": {"product_id": "a", "active": False, "category": "c"},
                     "c": {"product_id": "c", "active": True, "category": "c"}}
    assert missing == ["b", "d"]
    flags.stop()
    assert flags.get(["a"]) is None  # dropped; a later get scans again in the background


def test_too_many_products_or_max_zero_keep_nothing():
    stored = [row("a"), row("b")]
    assert ProductFlags(lambda: stored, lambda: 2, 3600, max_products=0).get(["a"]) is None
    over = ProductFlags(lambda: stored, lambda: 2, 3600, max_products=1)
    over.refresh()
    assert over.get(["a"]) is None
    over.stop()
