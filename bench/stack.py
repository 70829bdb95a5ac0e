"""The benchmarks' store, prepared once and reused: bench/results/store-N holds the first N mock products
(vectors cached on disk), the mock interactions of the benchmark users and an NCF model trained on them.

It is served the way `python -m app.ops.service` serves it: a Milvus Lite server on loopback that every process
(the in-process app, gunicorn workers, the trainer) reaches through MILVUS_URI.
"""
from __future__ import annotations

import os
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from app.config.settings import Settings
from app.core.catalog import Product, embedding_text
from app.core.indexing import rows_with_vectors
from app.core.resources import Resources
from app.ops.service import spawn, start_lite_server, terminate
from app.storage.products import ProductStore, connect
from app.storage.vector_space import vector_space
from ncf.recommender import latest_model_dir
from seed.interactions import generate_interactions
from seed.loader import catalogue_products, seed_events
from seed.mock_catalog import generate_products

from .common import bench_data_dir, free_port

CATALOG_SEED = 42
INTERACTIONS_SEED = 42
CACHE_CHUNK = 5000
TRAIN_EPOCHS = 3  # the store's model: latency does not depend on epochs; 30 (the default) take ~30 min at 100k
NEVER = threading.Event()  # the benchmarks do not stop their Lite server early


@contextmanager
def served_store(size: int, **overrides) -> Iterator[tuple[Settings, subprocess.Popen]]:
    """A Lite server over bench/results/store-`size` (stopped on exit), and settings whose MILVUS_URI is it
    (`overrides`: other settings)."""
    data_dir = bench_data_dir(f"store-{size}")
    port = free_port()
    server = start_lite_server(Settings.from_env(data_dir=data_dir, milvus_lite_port=port), dict(os.environ), NEVER)
    try:
        yield Settings.from_env(data_dir=data_dir, milvus_uri=f"http://127.0.0.1:{port}", **overrides), server
    finally:
        terminate(server)


def vectors_cache(settings: Settings) -> Path:
    """The file caching the mock catalogue's vectors made by these settings' encoder: keyed by model and
    precision (fp32 backends agree to cosine 0.9999 and share a file; int8 vectors never mix with them)."""
    space = vector_space(settings)
    return bench_data_dir("cache") / f"vectors-{CATALOG_SEED}-{space['model'].replace('/', '_')}-{space['precision']}.npy"


def catalog_vectors(size: int, settings: Settings, encoder) -> tuple[list[Product], np.ndarray]:
    """The first `size` mock products and their dense vectors (cached on disk: embedding 100k takes ~30 min)."""
    products = [Product.model_validate(r) for r in generate_products(size, seed=CATALOG_SEED)]
    cache = vectors_cache(settings)
    cached = np.load(cache) if cache.exists() else np.zeros((0, encoder.dimension), np.float32)
    while len(cached) < size:  # in chunks, each saved: an interrupted run resumes where it stopped
        missing = [embedding_text(p) for p in products[len(cached):len(cached) + CACHE_CHUNK]]
        print(f"embedding products {len(cached)}-{len(cached) + len(missing)} of {size} (cached in {cache}) ...",
              flush=True)
        cached = np.vstack([cached, encoder.encode_documents(missing)])
        np.save(cache, cached)
    return products, cached[:size]


def build_store(size: int, settings: Settings, encoder) -> tuple[list[Product], np.ndarray]:
    """A store holding exactly the first `size` mock products, with their vectors."""
    products, vectors = catalog_vectors(size, settings, encoder)
    write_products(settings, products, vectors)
    return products, vectors


def write_products(settings: Settings, products: list[Product], vectors: np.ndarray) -> None:
    """Make the store hold exactly `products` (in order): rows are written in order, so an interrupted build
    resumes at its last whole batch of 1,000."""
    store = ProductStore(connect(settings), settings, vectors.shape[1])
    store.ensure_collection()
    size, stored = len(products), store.count()
    if stored != size:
        resume = stored // 1000 * 1000 if stored < size else 0
        print(f"writing products {resume}-{size} to {settings.public_milvus_uri} ...", flush=True)
        for start in range(resume, size, 1000):
            store.upsert(rows_with_vectors(products[start:start + 1000], vectors[start:start + 1000]))
        store.flush()
    store.client.close()


def ensure_interactions(res: Resources, users: int) -> list[dict]:
    """The catalogue, with the mock interactions of `users` users ingested once."""
    products = catalogue_products(res.products)
    if res.events.count_events() == 0:
        events = list(generate_interactions(products, users, seed=INTERACTIONS_SEED))
        started = time.perf_counter()
        report = seed_events(events, res, total=len(events))
        print(f"seeded {report.written} events in {time.perf_counter() - started:.0f}s", flush=True)
    return products


def ensure_model(settings: Settings) -> str:
    """The version of the NCF model trained on the store's events (trained now, TRAIN_EPOCHS, if there is none)."""
    if latest_model_dir(settings.resolved_models_dir) is None:
        print(f"training an NCF model on the events ({TRAIN_EPOCHS} epochs) ...", flush=True)
        trainer = spawn(["-m", "app.ops.cli", "train", "--epochs", str(TRAIN_EPOCHS)], service_env(settings))
        if trainer.wait() != 0:
            raise SystemExit("training failed")
    return latest_model_dir(settings.resolved_models_dir).name


def prepare_store(settings: Settings, products: int, users: int) -> str:
    """The store of `products` mock products and `users` users' interactions; the NCF model's version."""
    res = Resources(settings)
    try:
        build_store(products, settings, res.encoder)
        ensure_interactions(res, users)
    finally:
        res.client.close()
    return ensure_model(settings)


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a service process (trainer, gunicorn) over this store."""
    return {**os.environ, "DATA_DIR": str(settings.data_dir), "MILVUS_URI": settings.milvus_uri, **extra}
