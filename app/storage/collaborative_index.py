"""Collaborative retrieval by ANN: each served NCF model's GMF item vectors in a Milvus collection of its own.

The collection of model version V is `ncf_items_<V>`: one row per item the model knows, its vector h ⊙ q_i
with the item's bias appended (ncf/scoring.py). Searching it by inner product with the user's [p_u, 1]
ranks items by the GMF part of the logit plus the bias; NeuMF then scores the candidates. Because the name
carries the version and only that version's weights are written into it, a request that holds one served
(version, model) pair searches that model's vectors and scores with that model's weights: the two never mix.

Every process that loads a model publishes its collection (rows are upserted by product id, so two processes
publishing the same version write the same rows); the served model is swapped only once it is complete.
After a swap, collections of versions older than the last two are dropped: a process that still serves one
of those falls back to scoring the GMF vectors itself.
"""
from __future__ import annotations

import logging
import re
from typing import Sequence

import numpy as np
from pymilvus import DataType, MilvusClient

from app.storage.milvus_filters import field_in
from app.storage.products import MAX_BATCH_ROWS

PREFIX = "ncf_items_"
VECTOR_FIELD = "vector"
KEEP_VERSIONS = 2  # the served model's collection and the one it replaced
log = logging.getLogger(__name__)


def collection_of(version: str) -> str:
    """The collection holding model `version`'s item vectors (Milvus names: letters, digits, underscores)."""
    return PREFIX + re.sub(r"[^0-9A-Za-z_]", "_", version)


class CollaborativeIndex:
    """Publishes, searches and retires the per-model-version collections of GMF item vectors."""

    def __init__(self, client: MilvusClient, batch_rows: int = 5 * MAX_BATCH_ROWS):
        self.client = client
        self.batch_rows = batch_rows

    def publish(self, version: str, product_ids: Sequence[str], vectors: np.ndarray) -> str:
        """Write the model's item vectors into its collection unless they are all there; returns its name."""
        name = collection_of(version)
        if not self.client.has_collection(name):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("product_id", DataType.VARCHAR, is_primary=True, max_length=64)
            schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=int(vectors.shape[1]))
            index = MilvusClient.prepare_index_params()
            index.add_index(VECTOR_FIELD, index_type="FLAT", metric_type="IP")
            self.client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
        if self._count(name) != len(product_ids):
            vectors = np.asarray(vectors, dtype=np.float32)
            for start in range(0, len(product_ids), self.batch_rows):
                self.client.upsert(name, [{"product_id": product_id, VECTOR_FIELD: vector}
                                          for product_id, vector in zip(product_ids[start:start + self.batch_rows],
                                                                        vectors[start:start + self.batch_rows])])
            self.client.flush(name)
        self.client.load_collection(name)
        return name

    def search(self, version: str, user_vector: np.ndarray, limit: int, exclude_ids: Sequence[str] = ()
               ) -> list[tuple[str, float]]:
        """The `limit` items of model `version` with the highest inner product, without `exclude_ids`."""
        hits = self.client.search(
            collection_of(version), data=[np.asarray(user_vector, dtype=np.float32).tolist()],
            anns_field=VECTOR_FIELD, limit=limit, search_params={"metric_type": "IP"},
            filter=field_in("product_id", list(exclude_ids), negate=True) if exclude_ids else "",
            output_fields=["product_id"])[0]
        return [(hit["entity"]["product_id"], float(hit["distance"])) for hit in hits]

    def retire(self, keep: Sequence[str]) -> list[str]:
        """Drop the collections of versions other than `keep` (and older ones' only); returns those dropped."""
        kept = {collection_of(version) for version in keep}
        dropped = []
        for name in self.client.list_collections():
            if name.startswith(PREFIX) and name not in kept and name < max(kept):
                self.client.drop_collection(name)
                dropped.append(name)
        return dropped

    def _count(self, name: str) -> int:
        return int(self.client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"])
