"""A training run killed midway (SIGKILL), while training or while writing its model directory, leaves the
served model untouched: no new complete directory, and a half-written one is never served."""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.config.settings import Settings
from app.core.collaborative import ServedModel
from app.storage.events import Event, EventStore, make_engine
from ncf.recommender import MODEL_DIR_PATTERN, MODEL_FILES, latest_model_dir
from tests.helpers import ROOT, eventually, run_module, service_env

TRAIN_ARGS = ("train", "--threads", "1", "--batch-size", "256", "--embed-dim", "8",
              "--layers", "16,8", "--seed", "0")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An event store of 60 users over 150 products and a models root holding one trained model:
    (database URL, models root, service environment)."""
    data_dir = tmp_path_factory.mktemp("training-crash")
    database_url = f"sqlite:///{data_dir / 'events.db'}"
    store = EventStore(make_engine(database_url), Settings.from_env({}).event_weights, 7.0)
    store.init_schema()
    rng = random.Random(0)
    products = [f"tc-p{i:03d}" for i in range(150)]
    batch = [Event(f"tc-{user}-{n}", f"tc-u{user:02d}", rng.choice(products), rng.choice(("view", "purchase")), None,
                   1_760_000_000 + user * 1000 + n) for user in range(60) for n in range(12)]
    with store.write_transaction() as connection:
        store.add(connection, batch, {})
    env = service_env(data_dir)
    models = data_dir / "models"
    trained = run_module("app.ops.cli", *TRAIN_ARGS, "--epochs", "2", "--database-url", database_url, "--out", str(models),
                         env=env)
    assert trained.returncode == 0, trained.stderr[-2000:]
    return database_url, models, env


def model_dirs(root: Path) -> set[str]:
    return {path.name for path in root.iterdir() if MODEL_DIR_PATTERN.match(path.name)}


def start_training(database_url: str, models: Path, env: dict, epochs: int, stderr: Path) -> subprocess.Popen:
    with open(stderr, "w") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "app.ops.cli", *TRAIN_ARGS, "--epochs", str(epochs), "--patience", str(epochs),
             "--database-url", database_url, "--out", str(models)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=handle,
        )


def partial_dirs(root: Path) -> list[Path]:
    return [path for path in root.iterdir() if path.name.endswith(".partial")]


def kill(process: subprocess.Popen) -> None:
    assert process.poll() is None, "the training ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()


def assert_served_model_unchanged(models: Path, served: Path, complete_before: set[str]) -> None:
    assert model_dirs(models) == complete_before
    assert latest_model_dir(models) == served
    assert ServedModel(models, check_seconds=0).version == served.name


def test_killed_while_training(trained, tmp_path):
    database_url, models, env = trained
    served, before = latest_model_dir(models), model_dirs(models)
    stderr = tmp_path / "stderr"
    process = start_training(database_url, models, env, epochs=500, stderr=stderr)
    try:
        eventually(lambda: max(map(int, re.findall(r"(\d+)/500\b", stderr.read_text())), default=0) >= 3, 300,
                   interval=0.1)  # NeuMF's progress bar: a few epochs in
    finally:
        kill(process)
    assert_served_model_unchanged(models, served, before)


def test_killed_while_writing_the_model_directory(trained, tmp_path):
    database_url, models, env = trained
    served, before = latest_model_dir(models), model_dirs(models)
    process = start_training(database_url, models, env, epochs=2, stderr=tmp_path / "stderr")
    try:  # killed once every model file is written, before the directory is renamed
        eventually(lambda: any(all((partial / name).is_file() for name in MODEL_FILES)
                               for partial in partial_dirs(models)), 300, interval=0.01)
    finally:
        kill(process)
    [abandoned] = partial_dirs(models)
    assert_served_model_unchanged(models, served, before)

    an_hour_ago = time.time() - 3700
    os.utime(abandoned, (an_hour_ago, an_hour_ago))
    in_progress = models / ".ncf-20990101T000000Z-0000beef.partial"  # as if another run were writing it now
    in_progress.mkdir()
    again = run_module("app.ops.cli", *TRAIN_ARGS, "--epochs", "2", "--database-url", database_url, "--out", str(models),
                       env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    newest = latest_model_dir(models)
    assert newest != served and model_dirs(models) == before | {newest.name}
    assert partial_dirs(models) == [in_progress]  # the killed run's directory, untouched for an hour, is removed
