"""Per-process resources (encoder, Milvus client, stores, services), created on first use after the fork."""
from __future__ import annotations

import logging
import threading

from flask import Flask, current_app
from pymilvus import MilvusClient

from app.config.settings import Settings
from app.core.collaborative import ServedModel
from app.core.embedding import DenseEncoder, QueryCachingEncoder, load_encoder
from app.core.experiments import Experiments
from app.core.facets import CatalogueFacets
from app.core.ingest import EventIngestor
from app.core.ranker import ServedRanker, train_served
from app.core.recommend import Recommender
from app.storage.attribution import ImpressionLog
from app.storage.collaborative_index import CollaborativeIndex
from app.storage.events import EventStore, make_engine
from app.storage.products import ProductStore, connect
from app.storage.sql_tables import create_tables
from app.storage.training_jobs import TrainingJobs
from app.storage.users import UserVectorStore

log = logging.getLogger(__name__)

EXTENSION_KEY = "search_service"


class Resources:
    """Lazily built, shared by the threads of one process (each built once, under one lock)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.RLock()

    def _build(self, name: str, factory):
        with self._lock:
            if name not in self.__dict__:
                self.__dict__[name] = factory()
            return self.__dict__[name]

    def _limit_torch_threads(self) -> None:
        """TORCH_THREADS for this process's query encoding and NCF scoring. Two OpenMP threads on a 2-core machine
        beside other busy processes spin-wait for each other: one query took ~480 ms instead of ~18 ms."""
        import torch

        torch.set_num_threads(self.settings.torch_threads)

    @property
    def encoder(self) -> DenseEncoder:
        def create() -> DenseEncoder:
            self._limit_torch_threads()
            encoder = load_encoder(self.settings)
            size = self.settings.query_cache_size
            return QueryCachingEncoder(encoder, size) if size else encoder
        return self._build("_encoder", create)

    @property
    def client(self) -> MilvusClient:
        return self._build("_client", lambda: connect(self.settings))

    @property
    def products(self) -> ProductStore:
        def create() -> ProductStore:
            store = ProductStore(self.client, self.settings, self.encoder.dimension)
            store.ensure_collection()
            return store
        return self._build("_products", create)

    @property
    def facets(self) -> CatalogueFacets:
        return self._build("_facets", lambda: CatalogueFacets(self.products))

    @property
    def users(self) -> UserVectorStore:
        def create() -> UserVectorStore:
            store = UserVectorStore(self.client, self.settings.users_collection, self.encoder.dimension)
            store.ensure_collection()
            return store
        return self._build("_users", create)

    @property
    def engine(self):
        """The SQL engine of events, jobs, impressions and experiments (connects on first use)."""
        settings = self.settings
        return self._build("_engine", lambda: make_engine(settings.resolved_database_url,
                                                          settings.database_connect_timeout))

    @property
    def events(self) -> EventStore:
        def create() -> EventStore:
            settings = self.settings
            return _with_schema(EventStore(self.engine, settings.event_weights, settings.popularity_half_life_days))
        return self._build("_events", create)

    @property
    def ingestor(self) -> EventIngestor:
        return self._build("_ingestor", lambda: EventIngestor(
            self.events, self.products, self.users, self.settings.event_weights,
            self.settings.user_vector_half_life_days,
        ))

    @property
    def served_model(self) -> ServedModel:
        def create() -> ServedModel:
            self._limit_torch_threads()
            index = CollaborativeIndex(self.client) if self.settings.collaborative_retrieval == "ann" else None
            return ServedModel(self.settings.resolved_models_dir, self.settings.model_check_seconds, index)
        return self._build("_served_model", create)

    @property
    def recommender(self) -> Recommender:
        return self._build("_recommender", lambda: Recommender.from_settings(
            self.settings, self.products, self.users, self.events, self.served_model))

    @property
    def training_jobs(self) -> TrainingJobs:
        return self._sql_tables("_training_jobs", lambda engine: TrainingJobs(
            engine, self.settings, lambda seed: train_served(self, seed)))

    def _sql_tables(self, name: str, factory):
        """A store over the event database's engine, its tables created on first use."""
        return self._build(name, lambda: _with_schema(factory(self.engine)))

    @property
    def impressions(self) -> ImpressionLog:
        settings = self.settings
        return self._build("_impressions", lambda: ImpressionLog(  # its tables: on its first database access
            self.engine, settings.impression_logging, settings.impression_flush_seconds,
            settings.impression_retention_days,
        ))

    @property
    def experiments(self) -> Experiments:
        return self._build("_experiments", lambda: Experiments(self.engine))  # its tables: on first access

    @property
    def ranker(self) -> ServedRanker:
        return self._build("_ranker", lambda: ServedRanker(self.settings.resolved_models_dir / "ranker",
                                                           self.settings.model_check_seconds))

    def warm_up(self) -> None:
        """What a worker does before it takes requests: open the product store and load every product's flags
        (app/storage/product_flags.py; if that fails, its background scans retry)."""
        try:
            self.products.flags.refresh()
        except Exception as exc:
            log.warning("loading the product flags failed (%s): recommendations read them from Milvus meanwhile", exc)

    def close(self) -> None:
        """Stop the product flags' scans, close the Milvus client and the SQL engine that were built (at exit; a
        later use starts and reconnects them)."""
        with self._lock:
            if "_products" in self.__dict__:
                self.__dict__["_products"].flags.stop()
            if "_client" in self.__dict__:
                self.__dict__["_client"].close()
            if "_engine" in self.__dict__:
                self.__dict__["_engine"].dispose()


def _with_schema(store):
    """The store, its tables created (see create_tables: safe against another worker doing the same)."""
    create_tables(store.init_schema)
    return store


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions[EXTENSION_KEY] = Resources(settings)


def resources() -> Resources:
    return current_app.extensions[EXTENSION_KEY]
