"""User vectors (app/core/user_vectors.py folds events into them) in a Milvus `users` collection, with each
user's event counts, the time the vector refers to and the highest event row folded in."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
from pymilvus import DataType, MilvusClient

from app.storage.events import EVENT_TYPES
from app.storage.milvus_filters import field_in

VECTOR_FIELD = "vector"
COUNT_FIELDS = {event_type: f"{event_type}_count" for event_type in EVENT_TYPES}


@dataclass
class UserVector:
    user_id: str
    vector: np.ndarray
    vector_time: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENT_TYPES, 0))
    applied_through: int = 0  # highest event row id folded in (makes a re-application a no-op)


class UserVectorStore:
    """The `users` collection: one row per user with their vector, event counts and times."""

    def __init__(self, client: MilvusClient, collection: str, dimension: int):
        self.client = client
        self.collection = collection
        self.dimension = dimension

    def ensure_collection(self) -> None:
        if self.client.has_collection(self.collection):
            self.client.load_collection(self.collection)
            return
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("user_id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=self.dimension)
        schema.add_field("vector_time", DataType.DOUBLE)
        for count_field in COUNT_FIELDS.values():
            schema.add_field(count_field, DataType.INT64)
        schema.add_field("applied_through", DataType.INT64)
        schema.add_field("updated_at", DataType.INT64)
        index = MilvusClient.prepare_index_params()
        index.add_index(VECTOR_FIELD, index_type="FLAT", metric_type="IP")
        self.client.create_collection(self.collection, schema=schema, index_params=index, consistency_level="Strong")

    def get(self, user_ids: Iterable[str]) -> dict[str, UserVector]:
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        rows = self.client.query(self.collection, filter=field_in("user_id", ids), output_fields=["*"])
        return {row["user_id"]: _user_vector(row) for row in rows}

    def upsert(self, users: Sequence[UserVector]) -> None:
        now = int(time.time())
        rows = [
            {
                "user_id": user.user_id, VECTOR_FIELD: user.vector.tolist(), "vector_time": float(user.vector_time),
                **{COUNT_FIELDS[t]: int(user.counts.get(t, 0)) for t in EVENT_TYPES},
                "applied_through": int(user.applied_through), "updated_at": now,
            }
            for user in users
        ]
        for start in range(0, len(rows), 500):
            self.client.upsert(self.collection, rows[start:start + 500])

    def count(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])


def _user_vector(row: dict) -> UserVector:
    return UserVector(
        row["user_id"], np.asarray(row[VECTOR_FIELD], dtype=np.float32), float(row["vector_time"]),
        {t: int(row[COUNT_FIELDS[t]]) for t in EVENT_TYPES}, int(row["applied_through"]),
    )
