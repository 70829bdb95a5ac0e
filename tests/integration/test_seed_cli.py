"""The seed CLI as users run it: a subprocess writing into its own embedded store."""
import json
import signal
import subprocess
import sys

import pytest

from tests.helpers import ROOT, SHARED_DATA, run_module, service_env

MOVIELENS = SHARED_DATA / "movielens-latest-small"


STORED_IDS = """
import json, sys
from app.config.settings import Settings
from app.storage.products import ProductStore, connect
settings = Settings.from_env()
store = ProductStore(connect(settings), settings, 384)
store.ensure_collection()
rows = store.client.query(settings.products_collection, filter="", output_fields=["product_id"], limit=16384)
json.dump([row["product_id"] for row in rows], sys.stdout)
"""


def stored_ids(data_dir) -> list[str]:
    """The product ids in a store, read by another process (a Lite store admits one process at a time)."""
    result = subprocess.run(
        [sys.executable, "-c", STORED_IDS], cwd=ROOT, env=service_env(data_dir), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def seed(data_dir, *args):
    result = run_module("seed", *args, env=service_env(data_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_mock_products_rerun_and_resume_never_duplicate(tmp_path):
    data_dir = tmp_path / "data"
    assert "products: written=40 " in seed(data_dir, "products", "--count", "40")
    assert "products: written=0 already_stored=40" in seed(data_dir, "--resume", "products", "--count", "40")
    assert "products: written=50 " in seed(data_dir, "products", "--count", "50")
    ids = stored_ids(data_dir)
    assert len(ids) == len(set(ids)) == 50


@pytest.mark.slow
def test_a_killed_seed_run_is_completed_by_a_rerun(tmp_path):
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        [sys.executable, "-m", "seed", "--batch-size", "64", "products", "--count", "400"],
        cwd=ROOT, env=service_env(data_dir), stderr=subprocess.PIPE, text=True,
    )
    progress = ""
    while "128/400" not in progress and process.poll() is None:
        progress += process.stderr.read(1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = len(stored_ids(data_dir))
    assert 0 < killed_at < 400
    assert "already_stored=" in seed(data_dir, "--resume", "products", "--count", "400")
    ids = stored_ids(data_dir)
    assert len(ids) == len(set(ids)) == 400


def test_catalog_file_with_mapping_and_bad_rows(tmp_path):
    source = tmp_path / "shop.jsonl"
    rows = [
        {"sku_code": "A-1", "title": "Bamboo Cutting Board", "maker": "Totally Bamboo", "cost": "24.5"},
        {"sku_code": "A-2", "title": "", "maker": "Nobody", "cost": "3"},
        {"sku_code": "A-3", "title": "Chef Knife 8 inch", "maker": "Victorinox", "cost": "-5"},
    ]
    source.write_text("\n".join(json.dumps(row) for row in rows))
    out = seed(tmp_path / "data", "catalog", str(source), "--mapping", "product_id=sku_code,name=title,brand=maker,price=cost")
    assert "products: written=1 " in out and "invalid=1" in out
    assert stored_ids(tmp_path / "data") == ["A-1"]


@pytest.mark.skipif(not MOVIELENS.exists(), reason="shared MovieLens data not present")
def test_movielens_movies_become_products(tmp_path):
    small = tmp_path / "ml"
    small.mkdir()
    lines = (MOVIELENS / "movies.csv").read_text().splitlines()[:31]
    (small / "movies.csv").write_text("\n".join(lines) + "\n")
    (small / "tags.csv").write_text((MOVIELENS / "tags.csv").read_text())
    movie_ids = {line.split(",", 1)[0] for line in lines[1:]}
    ratings = (MOVIELENS / "ratings.csv").read_text().splitlines()
    kept = [line for line in ratings[1:] if line.split(",")[1] in movie_ids]
    (small / "ratings.csv").write_text("\n".join(ratings[:1] + kept) + "\n")
    out = seed(tmp_path / "data", "movielens", str(small))
    assert "products: written=30 " in out and f"events: written={len(kept)} " in out
    assert "ml1" in stored_ids(tmp_path / "data")


def test_interactions_are_generated_from_the_stored_catalogue_once(tmp_path):
    data_dir = tmp_path / "data"
    seed(data_dir, "products", "--count", "80")
    export = tmp_path / "events.csv"
    out = seed(data_dir, "interactions", "--users", "6", "--min", "5", "--max", "10", "--export", str(export))
    rows = export.read_text().splitlines()[1:]
    assert 30 <= len(rows) <= 60 and f"events: written={len(rows)} already_stored=0 invalid=0" in out
    assert {row.split(",")[2] for row in rows} <= {f"P{i:07d}" for i in range(80)}
    again = seed(data_dir, "interactions", "--users", "6", "--min", "5", "--max", "10")
    assert f"events: written=0 already_stored={len(rows)}" in again
