"""Fixtures: one embedded Milvus Lite store and the packaged model for the session, seeded once."""
from __future__ import annotations

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One ONNX export of the encoder for every test and the services they start (it is keyed by the model's files)
os.environ.setdefault("ENCODER_CACHE_DIR", os.path.join(tempfile.gettempdir(), "hybrid-search-test-encoders"))

import pytest  # noqa: E402

from app import create_app  # noqa: E402
from app.config.settings import Settings  # noqa: E402
from app.core.catalog import Product  # noqa: E402
from app.core.indexing import index_products  # noqa: E402
from app.core.resources import resources  # noqa: E402
from seed.mock_catalog import generate_products  # noqa: E402
from tests.helpers import unavailable  # noqa: E402

CATALOG_SIZE = 2000
CATALOG_SEED = 42


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Settings:
    # Popularity read fresh: the tests post events and look at /popular at once (the cache: test_recommendations)
    return Settings.from_env({}, data_dir=tmp_path_factory.mktemp("data"), popular_cache_seconds=0,
                             encoder_cache_dir=os.environ["ENCODER_CACHE_DIR"])


@pytest.fixture(scope="session")
def app(settings):
    return create_app({"TESTING": True, "SETTINGS": settings})


@pytest.fixture(scope="session")
def res(app):
    """The app's per-process resources (encoder, stores)."""
    with app.app_context():
        yield resources()


@pytest.fixture(scope="session")
def catalog(res) -> list[dict]:
    """The mock catalogue (2,000 products, seed 42), embedded and stored once for the session."""
    records = list(generate_products(CATALOG_SIZE, seed=CATALOG_SEED))
    index_products((Product.model_validate(r) for r in records), res.products, res.encoder)
    res.products.flush()
    return records


@pytest.fixture
def client(app, catalog):
    return app.test_client()


@pytest.fixture(scope="module")
def postgres_url():
    """A fresh PostgreSQL database per test module on the loopback server (TEST_POSTGRES_URL), dropped after it."""
    import uuid

    from sqlalchemy import create_engine, text

    admin_url = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    name = f"hybrid_search_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        unavailable(f"PostgreSQL at {admin_url} is needed by this test: {exc}")
    yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
