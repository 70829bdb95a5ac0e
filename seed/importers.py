"""Read real catalogs (CSV / JSON lines, MovieLens) into product records.

Usage: ``read_catalog(path, **PRESETS["goodbooks"])`` or ``read_catalog(path, parse_mapping("name=title,..."))``.
"""
from __future__ import annotations

import calendar
import copy
import csv
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

TEXT_LIMITS = {"name": 512, "description": 4000, "brand": 128, "category": 128, "sub_category": 128}
FLOAT_FIELDS = ("price", "rating")
INT_FIELDS = ("rating_count", "sold_count")
FIELDS = ("product_id", *TEXT_LIMITS, *FLOAT_FIELDS, *INT_FIELDS, "active", "skus", "created_at")
DEFAULTS: dict[str, Any] = {
    "description": "", "brand": "", "category": "Uncategorized", "sub_category": "",
    "price": 0.0, "rating": 0.0, "rating_count": 0, "sold_count": 0, "active": True, "skus": [], "created_at": 0,
}
TRUE_WORDS = {"true", "1", "yes", "y", "t", "on"}
FALSE_WORDS = {"false", "0", "no", "n", "f", "off"}
PRODUCT_ID_MAX = 64
SKU_CODE_MAX = 64
VARIANT_MAX = 128
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
DISALLOWED_ID_CHARS = re.compile(r"[^A-Za-z0-9_.:-]")
INTEGRAL_FLOAT = re.compile(r"-?\d+\.0+")
JOINED_COLUMNS_SEPARATOR = ". "
JSON_LINES_SUFFIXES = (".jsonl", ".json", ".ndjson")

PRESETS: dict[str, dict[str, Any]] = {
    # /work/shared/data/goodbooks-10k/books.csv
    "goodbooks": {
        "mapping": {
            "product_id": "book_id", "name": "title", "brand": "authors",
            "description": ["original_title", "authors", "original_publication_year", "language_code"],
            "rating": "average_rating", "rating_count": "ratings_count",
        },
        "defaults": {"category": "Books", "sub_category": "book"},
    },
    # /work/shared/data/uci-online-retail-sample/online_retail_first10k.csv (one row per invoice line)
    "uci-retail": {
        "mapping": {"product_id": "StockCode", "name": "Description", "price": "UnitPrice",
                    "sold_count": "Quantity", "created_at": "InvoiceDate"},
        "dedupe": True,
        "sum_fields": ("sold_count",),
    },
}


@dataclass
class ImportStats:
    """Counters filled in while a reader is consumed."""

    rows: int = 0
    skipped_empty_name: int = 0
    merged_duplicates: int = 0


def parse_mapping(spec: str) -> dict[str, str | list[str]]:
    """Parse ``"product_id=book_id,description=original_title+language_code"``; ``+`` joins columns."""
    mapping: dict[str, str | list[str]] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        field, separator, columns = (piece.strip() for piece in item.partition("="))
        names = [name.strip() for name in columns.split("+") if name.strip()]
        if not separator or not field or not names:
            raise ValueError(f"bad mapping item {item!r}: expected field=column or field=column1+column2")
        mapping[field] = names[0] if len(names) == 1 else names
    return mapping


def read_catalog(
    path: str | Path,
    mapping: dict[str, str | list[str]] | None = None,
    defaults: dict[str, Any] | None = None,
    *,
    dedupe: bool = False,
    sum_fields: Iterable[str] = ("sold_count",),
    stats: ImportStats | None = None,
) -> Iterator[dict]:
    """Yield product records from a ``.csv`` or JSON-lines file.

    ``mapping`` maps product fields to source columns (a list joins several text columns); unmapped fields
    come from a same-named column, else from ``defaults`` / ``DEFAULTS``. Rows with an empty name are
    skipped and counted in ``stats``. With ``dedupe`` the first row per product_id wins and ``sum_fields``
    are summed over its duplicates (the whole file is read before the first record is yielded).
    JSON-lines columns are those of the first record. Raises ValueError at once on an unsupported file
    type or a mapping naming a column the file lacks.
    """
    rows, columns = _open_rows(Path(path))
    sources = _resolve_sources(mapping or {}, columns)
    stats = stats if stats is not None else ImportStats()
    records = _build_records(rows, sources, {**DEFAULTS, **(defaults or {})}, stats)
    if dedupe:
        records = _merge_duplicates(records, tuple(sum_fields), stats)
    return map(_clamp_counts, records)


def read_movielens(directory: str | Path) -> Iterator[dict]:
    """Yield one product per movie of a MovieLens ``movies.csv`` (+ ``tags.csv``, ``ratings.csv`` if present)."""
    directory = Path(directory)
    tags = _movie_tags(directory / "tags.csv")
    ratings = _movie_ratings(directory / "ratings.csv")
    for row in _csv_rows(directory / "movies.csv"):
        movie_id = row["movieId"]
        genres = [] if row["genres"] == "(no genres listed)" else row["genres"].split("|")
        mean_rating, rating_count = ratings.get(movie_id, (0.0, 0))
        yield {
            "product_id": f"ml{movie_id}",
            "name": _truncate(_text(row["title"]), TEXT_LIMITS["name"]),
            "description": _truncate(_movie_description(genres, tags.get(movie_id, [])), TEXT_LIMITS["description"]),
            "brand": "",
            "category": genres[0] if genres else "Movies",
            "sub_category": "movie",
            "price": 0.0,
            "rating": _rating(mean_rating),
            "rating_count": rating_count,
            "sold_count": 0,
            "active": True,
            "skus": [],
            "created_at": _title_year_timestamp(row["title"]),
        }


# --- generic catalog reading -------------------------------------------------------------------------


def _build_records(rows: Iterator[dict], sources: dict, defaults: dict, stats: ImportStats) -> Iterator[dict]:
    for number, row in enumerate(rows, start=1):
        stats.rows += 1
        record = _build_record(row, number, sources, defaults)
        if not record["name"]:
            stats.skipped_empty_name += 1
            continue
        yield record


def count_rows(path: str | Path) -> int:
    """The number of rows (records) of a ``.csv`` or JSON-lines file, read once: the total of a progress bar."""
    return sum(1 for _ in _open_rows(Path(path))[0])


def _open_rows(path: Path) -> tuple[Iterator[dict], list[str]]:
    """The rows of ``path`` (read lazily) and its column names."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv_rows(path), _csv_header(path)
    if suffix in JSON_LINES_SUFFIXES:
        rows = _json_lines(path)
        first = next(rows, None)
        return (_prepend(first, rows), list(first)) if first else (iter(()), [])
    raise ValueError(f"unsupported catalog file {path.name!r}: expected .csv or {', '.join(JSON_LINES_SUFFIXES)}")


def _csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle), [])


def _csv_rows(path: Path) -> Iterator[dict]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        yield from csv.DictReader(handle)


def _json_lines(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            value = json.loads(line)
            if not isinstance(value, dict):
                raise ValueError(f"{path.name} line {line_number}: expected a JSON object per line")
            yield value


def _prepend(first: dict, rows: Iterator[dict]) -> Iterator[dict]:
    yield first
    yield from rows


def _resolve_sources(mapping: dict, columns: list[str]) -> dict[str, list[str]]:
    """Source columns per field: the mapping, else a same-named column; fields without columns are absent."""
    unknown_fields = set(mapping) - set(FIELDS)
    if unknown_fields:
        raise ValueError(f"mapping names unknown product fields {sorted(unknown_fields)}; known: {list(FIELDS)}")
    sources = {field: [field] for field in FIELDS if field in columns}
    for field, names in mapping.items():
        names = [names] if isinstance(names, str) else list(names)
        if not names:
            raise ValueError(f"mapping {field}: no column given")
        missing = [name for name in names if name not in columns]
        if missing:
            raise ValueError(f"mapping {field}={'+'.join(names)}: no column {missing} in the file; columns are {columns}")
        if len(names) > 1 and field not in TEXT_LIMITS:
            raise ValueError(f"mapping {field}: only text fields {list(TEXT_LIMITS)} can join several columns")
        sources[field] = names
    return sources


def _build_record(row: dict, number: int, sources: dict[str, list[str]], defaults: dict) -> dict:
    record = {}
    for field in FIELDS:
        raw = _raw_value(row, sources.get(field, ()))
        if _is_blank(raw):
            record[field] = copy.copy(defaults.get(field, ""))
            continue
        try:
            record[field] = _coerce(field, raw)
        except (TypeError, ValueError):
            record[field] = raw  # left as found: product validation rejects (and counts) the row
    record["product_id"] = record["product_id"] or f"row{number}"
    return record


def _raw_value(row: dict, columns: Iterable[str]) -> Any:
    """One column's value as is, or several columns' non-empty texts joined with ``". "``."""
    values = [row.get(column) for column in columns]
    if len(values) == 1:
        return values[0]
    return JOINED_COLUMNS_SEPARATOR.join(_text(value) for value in values if not _is_blank(value))


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _coerce(field: str, value: Any) -> Any:
    if field == "product_id":
        return DISALLOWED_ID_CHARS.sub("_", _text(value))[:PRODUCT_ID_MAX]
    if field in TEXT_LIMITS:
        return _truncate(_text(value), TEXT_LIMITS[field])
    if field == "price":
        return round(float(value), 2)
    if field == "rating":
        return _rating(float(value))
    if field in INT_FIELDS:
        return int(float(value))
    if field == "active":
        return _bool(value)
    if field == "skus":
        return _skus(json.loads(value) if isinstance(value, str) else value)
    return _timestamp(value)  # created_at


def _text(value: Any) -> str:
    """Trimmed text without control characters; integral floats such as a CSV year ``2008.0`` lose their ``.0``."""
    text = CONTROL_CHARACTERS.sub(" ", str(value)).strip()
    return text.split(".")[0] if INTEGRAL_FLOAT.fullmatch(text) else text


def _truncate(text: str, limit: int) -> str:
    """Cut to ``limit`` characters, at the last ``", "`` if there is one, so lists (authors) keep whole items."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    return cut.rsplit(", ", 1)[0] if ", " in cut else cut


def _rating(value: float) -> float:
    """Round to one decimal; 0 means unrated, anything else is kept within 1.0..5.0."""
    rounded = round(value, 1)
    return 0.0 if rounded <= 0 else min(5.0, max(1.0, rounded))


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ValueError(f"not a boolean: {value!r}")


def _skus(items: Any) -> list[dict]:
    if not isinstance(items, list):
        raise ValueError(f"skus must be a JSON list, got {type(items).__name__}")
    return [_sku(item) for item in items]


def _sku(item: Any) -> dict:
    if not isinstance(item, dict) or _is_blank(item.get("sku")):
        raise ValueError(f"each sku needs a non-empty 'sku' code, got {item!r}")
    return {
        "sku": _text(item["sku"])[:SKU_CODE_MAX],
        "price": max(0.0, round(float(item.get("price") or 0), 2)),
        "stock": max(0, int(float(item.get("stock") or 0))),
        "variant": _truncate(_text(item.get("variant") or ""), VARIANT_MAX),
    }


def _timestamp(value: Any) -> int:
    """Unix seconds (never negative) from a number or an ISO date/time; naive times are taken as UTC."""
    try:
        return max(0, int(float(value)))
    except ValueError:
        moment = datetime.fromisoformat(str(value).strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0, int(moment.timestamp()))


def _merge_duplicates(records: Iterable[dict], sum_fields: tuple[str, ...], stats: ImportStats) -> Iterator[dict]:
    """Keep the first record per product_id, adding up ``sum_fields`` of later duplicates."""
    merged: dict[str, dict] = {}
    for record in records:
        first = merged.setdefault(record["product_id"], record)
        if first is not record:
            stats.merged_duplicates += 1
            for field in sum_fields:
                first[field] += record[field]
    yield from merged.values()


def _clamp_counts(record: dict) -> dict:
    """Counts are never negative (summed returns/cancellations can push them below zero)."""
    for field in INT_FIELDS:
        record[field] = max(0, record[field])
    return record


# --- MovieLens ---------------------------------------------------------------------------------------

MOVIE_TAG_LIMIT = 20
TITLE_YEAR = re.compile(r"\((\d{4})(?:[-–]\d{4})?\)\s*$")


def _movie_tags(path: Path) -> dict[str, list[str]]:
    """Distinct tags per movie (case-insensitive, first spelling kept), most frequent first, at most 20."""
    if not path.exists():
        return {}
    counts: dict[str, Counter] = defaultdict(Counter)
    spellings: dict[str, str] = {}
    for row in _csv_rows(path):
        tag = _text(row["tag"])
        if tag:
            counts[row["movieId"]][tag.lower()] += 1
            spellings.setdefault(tag.lower(), tag)
    return {movie: [spellings[tag] for tag, _ in counter.most_common(MOVIE_TAG_LIMIT)] for movie, counter in counts.items()}


def _movie_ratings(path: Path) -> dict[str, tuple[float, int]]:
    """(mean rating, number of ratings) per movie id."""
    sums: dict[str, float] = defaultdict(float)
    counts: Counter = Counter()
    if path.exists():
        for row in _csv_rows(path):
            sums[row["movieId"]] += float(row["rating"])
            counts[row["movieId"]] += 1
    return {movie: (sums[movie] / count, count) for movie, count in counts.items()}


def _movie_description(genres: list[str], tags: list[str]) -> str:
    parts = [f"Genres: {', '.join(genres)}." if genres else "", f"Tags: {', '.join(tags)}." if tags else ""]
    return " ".join(part for part in parts if part)


def _title_year_timestamp(title: str) -> int:
    """Jan 1 (UTC) of the year in a title such as ``Toy Story (1995)``; 0 without a year or before 1970."""
    match = TITLE_YEAR.search(title)
    return max(0, calendar.timegm((int(match.group(1)), 1, 1, 0, 0, 0))) if match else 0
