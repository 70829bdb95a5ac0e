"""Loading product records into the store: validate, embed, upsert in batches, with a progress bar."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Iterator

from pydantic import ValidationError
from tqdm import tqdm

from app.catalog import Product
from app.embedding import load_encoder
from app.indexing import DEFAULT_BATCH, chunked, index_products
from app.settings import Settings
from app.store import ProductStore, connect

log = logging.getLogger(__name__)


@dataclass
class SeedReport:
    written: int = 0
    already_stored: int = 0
    invalid: int = 0


def open_product_store(settings: Settings):
    """The encoder and the (created if missing) products store for these settings."""
    encoder = load_encoder(settings)
    store = ProductStore(connect(settings), settings, encoder.dimension)
    store.ensure_collection()
    return encoder, store


def seed_products(
    records: Iterable[dict],
    settings: Settings,
    total: int | None = None,
    resume: bool = False,
    batch_size: int = DEFAULT_BATCH,
) -> SeedReport:
    """Upsert `records` (product dicts); with `resume`, products already stored are skipped.

    Upsert by product_id means a re-run, or a run after a kill, never duplicates a product.
    """
    encoder, store = open_product_store(settings)
    report = SeedReport()
    progress = tqdm(total=total, unit="product", desc="seeding", smoothing=0.1)

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

    report.written = index_products(products, store, encoder, batch_size, on_batch=advance)
    progress.close()
    store.flush()
    return report
