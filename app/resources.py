"""Per-process resources (encoder, Milvus client, stores), created on first use after the fork."""
from __future__ import annotations

import threading

from flask import Flask, current_app
from pymilvus import MilvusClient

from .embedding import DenseEncoder, load_encoder
from .settings import Settings
from .store import ProductStore, connect

EXTENSION_KEY = "search_service"


class Resources:
    """Lazily built, shared by the threads of one process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._encoder: DenseEncoder | None = None
        self._client: MilvusClient | None = None
        self._products: ProductStore | None = None

    @property
    def client(self) -> MilvusClient:
        with self._lock:
            if self._client is None:
                self._client = connect(self.settings)
            return self._client

    @property
    def encoder(self) -> DenseEncoder:
        with self._lock:
            if self._encoder is None:
                self._encoder = load_encoder(self.settings)
            return self._encoder

    @property
    def products(self) -> ProductStore:
        encoder, client = self.encoder, self.client
        with self._lock:
            if self._products is None:
                store = ProductStore(client, self.settings, encoder.dimension)
                store.ensure_collection()
                self._products = store
            return self._products


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions[EXTENSION_KEY] = Resources(settings)


def resources() -> Resources:
    return current_app.extensions[EXTENSION_KEY]
