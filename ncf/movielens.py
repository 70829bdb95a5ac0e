"""MovieLens as a training source: its ratings as Interactions, its genres as NeuMF item features."""
from __future__ import annotations

from pathlib import Path

from .data import Interactions, from_movielens, movielens_genres
from .mappings import ItemFeatures
from .run import item_features

# chosen on validation: genre shares took MovieLens validation NDCG@10 from 0.5011 to 0.4922 (seed 0)
MOVIELENS_DEFAULTS = {"attribute_shares": False}


def movielens_source(path: Path) -> tuple[Interactions, dict]:
    """The ratings of the MovieLens directory `path`, and the source description that reloads them."""
    return from_movielens(path), {"kind": "movielens", "path": str(Path(path).resolve())}


def movielens_features(source: dict, interactions: Interactions) -> ItemFeatures | None:
    """Each movie's genres."""
    return item_features(source, interactions, movielens_genres(source["path"]), ("genre",))


def load_source(source: dict) -> Interactions:
    """The interactions a model trained on files was trained on (`evaluate_model_dir`)."""
    if source["kind"] != "movielens":
        raise ValueError(f"the model was trained on {source['kind']}: re-evaluate it with "
                         "`python -m app.ops.cli evaluate-model DIR`")
    return from_movielens(source["path"])
