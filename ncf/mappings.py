"""Two-way mapping between external id strings and contiguous integer indices."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np


class IdMapping:
    """External ids (strings) ↔ indices 0..n-1, in the order given."""

    def __init__(self, ids: Iterable[str]):
        self.ids: list[str] = [str(external_id) for external_id in ids]
        self._index = {external_id: index for index, external_id in enumerate(self.ids)}
        if len(self._index) != len(self.ids):
            raise ValueError("ids must be unique")

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, external_id: object) -> bool:
        return external_id in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMapping) and self.ids == other.ids

    def index(self, external_id: str) -> int | None:
        """The index of one id, None if unknown."""
        return self._index.get(external_id)

    def indices(self, external_ids: Sequence[str]) -> np.ndarray:
        """Indices of many ids as int64, -1 for unknown ids."""
        return np.fromiter((self._index.get(i, -1) for i in external_ids), dtype=np.int64, count=len(external_ids))

    def to_json(self) -> list[str]:
        return list(self.ids)

    @classmethod
    def from_json(cls, ids: list[str]) -> "IdMapping":
        return cls(ids)


def save_mappings(path: str | Path, users: IdMapping, items: IdMapping) -> None:
    """Write both mappings to one JSON file: {"users": [...], "items": [...]}."""
    Path(path).write_text(json.dumps({"users": users.to_json(), "items": items.to_json()}), encoding="utf-8")


def load_mappings(path: str | Path) -> tuple[IdMapping, IdMapping]:
    """(users, items) from a file written by `save_mappings`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return IdMapping.from_json(data["users"]), IdMapping.from_json(data["items"])
