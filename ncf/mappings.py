"""External id strings ↔ contiguous integer indices, and each item's attribute values as indices."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

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


class ItemFeatures:
    """Each item's attribute values (such as `brand=Zara`, `genre=Comedy`) as indices into `values`.

    `items` is an (n_items, width) int64 table aligned with the item mapping, padded with -1; an item may
    have no value at all.
    """

    def __init__(self, fields: Sequence[str], values: IdMapping, items: np.ndarray):
        self.fields, self.values, self.items = tuple(fields), values, np.asarray(items, dtype=np.int64)

    @classmethod
    def from_attributes(cls, item_ids: IdMapping, attributes: Mapping[str, Iterable[str]],
                        fields: Sequence[str]) -> "ItemFeatures":
        """The table of `item_ids` from {item id: its values}; values are indexed in sorted order."""
        per_item = [sorted(set(attributes.get(item_id, ()))) for item_id in item_ids.ids]
        values = IdMapping(sorted({value for item_values in per_item for value in item_values}))
        return cls(fields, values, _padded([values.indices(item_values).tolist() for item_values in per_item]))

    def value_fields(self) -> np.ndarray:
        """The index in `fields` of each value's field (values are written `field=value`)."""
        try:
            return np.array([self.fields.index(value.split("=", 1)[0]) for value in self.values.ids], dtype=np.int64)
        except ValueError:
            raise ValueError(f"attribute values must be written field=value with a field of {self.fields}") from None

    def summary(self) -> dict:
        """Fields, number of distinct values and of items with at least one value (for config.json)."""
        return {"fields": list(self.fields), "values": len(self.values),
                "items_with_values": int((self.items >= 0).any(axis=1).sum())}

    def save(self, path: str | Path) -> None:
        """{"fields": [...], "values": [...], "items": [[value index, ...] per item, in item-mapping order]}."""
        items = [[int(value) for value in row if value >= 0] for row in self.items]
        Path(path).write_text(json.dumps({"fields": list(self.fields), "values": self.values.to_json(),
                                          "items": items}), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "ItemFeatures":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(data["fields"], IdMapping.from_json(data["values"]), _padded(data["items"]))


def _padded(rows: Sequence[Sequence[int]]) -> np.ndarray:
    """Rows of different lengths as one int64 table padded with -1."""
    table = np.full((len(rows), max(map(len, rows), default=0)), -1, dtype=np.int64)
    for index, row in enumerate(rows):
        table[index, :len(row)] = row
    return table
