"""Turning validated products into Milvus rows: search text, dense vector and (learned) sparse vector."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from app.core.catalog import Product, embedding_text, search_text
from app.core.embedding import DenseEncoder
from app.storage.products import DENSE_FIELD, SPARSE_FIELD, TEXT_FIELD, ProductStore

DEFAULT_BATCH = 256
T = TypeVar("T")


def product_rows(products: Sequence[Product], encoder: DenseEncoder, learned_sparse: bool) -> list[dict]:
    """Milvus rows for `products`, embedded in one batch."""
    vectors = encoder.encode_documents([embedding_text(product) for product in products])
    lexical = [search_text(product) for product in products]
    sparse = encoder.encode_documents_sparse(lexical) if learned_sparse else None
    return rows_with_vectors(products, vectors, lexical, sparse)


def rows_with_vectors(products: Sequence[Product], vectors: Sequence[np.ndarray],
                      lexical: Sequence[str] | None = None, sparse: Sequence[dict] | None = None) -> list[dict]:
    """Milvus rows for `products` whose dense (and learned `sparse`) vectors are known; `lexical`: their
    search texts when already computed."""
    lexical = [search_text(product) for product in products] if lexical is None else lexical
    rows = []
    for i, product in enumerate(products):
        row = {**product.model_dump(), TEXT_FIELD: lexical[i], DENSE_FIELD: vectors[i].tolist()}
        if sparse is not None:
            row[SPARSE_FIELD] = sparse[i]
        rows.append(row)
    return rows


def index_products(
    products: Iterable[Product],
    store: ProductStore,
    encoder: DenseEncoder,
    batch_size: int = DEFAULT_BATCH,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Embed and upsert products in batches; the write of one batch overlaps the embedding of the next.

    Returns the number of products written. Upsert by primary key makes a re-run idempotent.
    """
    written = 0
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        for batch in chunked(products, batch_size):
            rows = product_rows(batch, encoder, store.learned_sparse)
            if pending is not None:
                written += pending.result()
                if on_batch:
                    on_batch(written)
            pending = writer.submit(_write, store, rows)
        if pending is not None:
            written += pending.result()
            if on_batch:
                on_batch(written)
    return written


def _write(store: ProductStore, rows: list[dict]) -> int:
    store.upsert(rows)
    return len(rows)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
