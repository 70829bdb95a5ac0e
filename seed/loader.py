"""Loading into the stores: products (validate, embed, upsert) and events (the service's ingestion path),
in batches with a progress bar."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Iterator

from pydantic import ValidationError
from tqdm import tqdm

from app.core.catalog import Product
from app.core.event_input import EventIn
from app.core.indexing import DEFAULT_BATCH, chunked, index_products
from app.core.resources import Resources
from app.storage.events import Event
from app.storage.products import ProductStore

log = logging.getLogger(__name__)
EVENT_BATCH = 500


@dataclass
class SeedReport:
    written: int = 0
    already_stored: int = 0
    invalid: int = 0


def seed_products(
    records: Iterable[dict],
    resources: Resources,
    total: int | None = None,
    resume: bool = False,
    batch_size: int = DEFAULT_BATCH,
) -> SeedReport:
    """Upsert `records` (product dicts); with `resume`, products already stored are skipped.

    Upsert by product_id means a re-run, or a run after a kill, never duplicates a product.
    """
    store = resources.products
    report = SeedReport()
    progress = tqdm(total=total, unit="product", desc="products", smoothing=0.1)

    def valid_products() -> Iterator[Product]:
        for record in records:
            try:
                yield Product.model_validate(record)
            except ValidationError as exc:
                report.invalid += 1
                progress.update(1)
                log.warning("skipping invalid product %r: %s", record.get("product_id"), exc.errors()[0]["msg"])

    def not_stored(products: Iterable[Product]) -> Iterator[Product]:
        for batch in chunked(products, batch_size):
            stored = store.existing_ids([product.product_id for product in batch])
            report.already_stored += len(stored)
            progress.update(len(stored))
            yield from (product for product in batch if product.product_id not in stored)

    products = not_stored(valid_products()) if resume else valid_products()
    last = 0

    def advance(written: int) -> None:
        nonlocal last
        progress.update(written - last)
        last = written

    report.written = index_products(products, store, resources.encoder, batch_size, on_batch=advance)
    progress.close()
    store.flush()
    return report


def seed_events(records: Iterable[dict], resources: Resources, total: int | None = None,
                batch_size: int = EVENT_BATCH) -> SeedReport:
    """Validate event dicts and ingest them in batches (stored, popularity, user vectors)."""
    report = SeedReport()
    now = datetime.now(timezone.utc)
    with tqdm(total=total, unit="event", desc="events", smoothing=0.1) as progress:
        for batch in chunked(_valid_events(records, now, report), batch_size):
            result = resources.ingestor.ingest(batch)
            report.written += result.accepted
            report.already_stored += result.duplicates
            progress.update(len(batch))
    resources.ingestor.apply_all_pending()
    return report


def _valid_events(records: Iterable[dict], now: datetime, report: SeedReport) -> Iterator[Event]:
    for record in records:
        try:
            yield EventIn.model_validate(record).to_event(now)
        except ValidationError as exc:
            report.invalid += 1
            log.warning("skipping invalid event %r: %s", record.get("event_id"), exc)


def catalogue_products(store: ProductStore) -> list[dict]:
    """Every stored product's id and the attributes interactions are generated from."""
    return store.scan(["product_id", "category", "sub_category", "brand", "active", "sold_count"])
