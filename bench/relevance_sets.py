"""The labelled query sets of the relevance benchmark (bench/relevance.py): a catalogue, its queries and their
relevant products, built from real public data in /work/shared/data. Labels are never in the indexed text.

- `movielens` (tag completion): a tag MovieLens users gave to at least `min_movies` movies is a query (two
  bookkeeping tags left out, see META_TAGS); the catalogue is every movie some user tagged. A query's movies
  are split by a hash of (tag, movie) into kept and held-out halves: a movie's indexed text is its title,
  genres and the tags it was given except those held out from it; the query's relevant results are its
  held-out movies (binary gains), whose text lacks the query tag, and its kept movies are excluded from its
  search by the service's own filter (`product_id not in ...`). A query is found through titles, genres and
  other tags only: a semantic set (BM25 matches few relevant movies).
- `goodbooks` (series look-up): the catalogue is all 10,000 goodbooks books (name = title, brand = authors,
  description = original title, authors, year, language: the `seed` goodbooks preset), with Goodreads'
  series marker ("(The Hunger Games, #1)") removed from title and original title. A series with at least
  two books is a query (its name lowercased); its books are the relevant results. A shopper typing a product
  line: some of its books carry the series' words in their titles ("Harry Potter and ..."), others do not
  ("Catching Fire", "Mockingjay"), so a query is found through title words, authors and the model's
  knowledge: a lexical set. Limits: Goodreads' series names are uneven ("Cirque du Freak" / "Cirque Du
  Freak" merge when lowercased, "The Sword of Truth" / "Sword of Truth" do not), a book of a series whose
  title lacks the marker counts as not relevant, and books of the same author outside the series are not
  relevant, though a shopper might accept them.

Queries are split by a hash of their text into validation and test halves.
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from app.core.catalog import Product
from seed.importers import PRESETS, read_catalog, read_movielens

from .common import ROOT

DATA = ROOT.parent / "shared" / "data"
MOVIELENS, GOODBOOKS = DATA / "movielens-latest-small", DATA / "goodbooks-10k"
META_TAGS = {"in netflix queue", "imdb top 250"}  # about a user's lists, not the movie
# Goodreads' series marker at the end of a title: "(Name, #1)", "(Name #2.5)", "(A, #1; B, #4)", "(Name, #1-3)"
SERIES_MARKER = re.compile(r"\s*\(([^()]*#\s*[\d.]+(?:-[\d.]+)?[^()]*)\)\s*$")
SERIES_PART = re.compile(r"^(.*?),?\s*#\s*[\d.]+(?:-[\d.]+)?$")
ANY_SERIES_MARKER = re.compile(r"\s*\([^()]*#\s*[\d.]+[^()]*\)")  # also inside the joined description


@dataclass(frozen=True)
class QuerySet:
    name: str
    products: list[Product]
    relevant: dict[str, set[str]]  # query → its relevant product ids
    excluded: dict[str, tuple[str, ...]]  # query → product ids left out of its search (the filter)


def hashed(*parts: str) -> int:
    return hashlib.sha1("\x1f".join(parts).encode()).digest()[0]


def split(queries: dict[str, set[str]]) -> dict[str, dict[str, set[str]]]:
    """Validation and test halves, by a stable hash of the query text."""
    halves: dict[str, dict[str, set[str]]] = {"validation": {}, "test": {}}
    for query, relevant in queries.items():
        halves["test" if hashed(query) % 2 else "validation"][query] = relevant
    return halves


# ---- movielens --------------------------------------------------------------------------------------
def load_tags(data: Path) -> dict[str, dict[str, str]]:
    """product id → {tag lowercased: the first spelling seen}."""
    tags: dict[str, dict[str, str]] = defaultdict(dict)
    with open(data / "tags.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            tag = " ".join(row["tag"].split())
            if tag:
                tags[f"ml{row['movieId']}"].setdefault(tag.lower(), tag)
    return tags


def movielens(data: Path = MOVIELENS, min_movies: int = 3) -> QuerySet:
    """Tag completion over the tagged movies (module docstring)."""
    tags = load_tags(data)
    movies_of: dict[str, list[str]] = defaultdict(list)
    for movie, movie_tags in sorted(tags.items()):
        for tag in movie_tags:
            if tag not in META_TAGS:
                movies_of[tag].append(movie)
    relevant, kept = {}, {}
    for tag, movies in sorted(movies_of.items()):
        if len(movies) < min_movies:
            continue
        ordered = sorted(movies, key=lambda movie: (hashed(tag, movie), movie))
        half = len(ordered) // 2  # at least one held out and one kept
        relevant[tag], kept[tag] = set(ordered[:half]), tuple(ordered[half:])
    held_out = {(movie, tag) for tag, movies in relevant.items() for movie in movies}
    with tempfile.TemporaryDirectory() as untagged:
        for name in ("movies.csv", "ratings.csv"):
            os.symlink(data / name, Path(untagged) / name)
        products = [Product.model_validate(record) for record in read_movielens(untagged)]
    described = []
    for product in (p for p in products if p.product_id in tags):
        shown = [spelling for tag, spelling in tags[product.product_id].items()
                 if (product.product_id, tag) not in held_out]
        text = f"{product.description} Tags: {', '.join(shown)}." if shown else product.description
        described.append(product.model_copy(update={"description": text.strip()}))
    return QuerySet("movielens", described, relevant, kept)


# ---- goodbooks --------------------------------------------------------------------------------------
def series_of(title: str) -> list[str]:
    """The series names of a Goodreads title's marker, lowercased ("(Discworld, #4; Death, #1)" → 2)."""
    marker = SERIES_MARKER.search(title)
    if not marker:
        return []
    parts = (SERIES_PART.match(part.strip()) for part in marker.group(1).split(";"))
    return [" ".join(part.group(1).split()).lower() for part in parts if part and part.group(1).strip()]


def without_series(text: str) -> str:
    return " ".join(ANY_SERIES_MARKER.sub(" ", text).split())


def goodbooks(data: Path = GOODBOOKS, min_books: int = 2) -> QuerySet:
    """Series look-up over the goodbooks catalogue (module docstring)."""
    preset = PRESETS["goodbooks"]
    products, books_of = [], defaultdict(set)
    for record in read_catalog(data / "books.csv", preset["mapping"], preset["defaults"]):
        product = Product.model_validate(record)
        for series in series_of(product.name):
            books_of[series].add(product.product_id)
        products.append(product.model_copy(update={"name": without_series(product.name) or product.name,
                                                   "description": without_series(product.description)}))
    relevant = {series: books for series, books in sorted(books_of.items()) if len(books) >= min_books}
    return QuerySet("goodbooks", products, relevant, {series: () for series in relevant})


SETS = {"movielens": movielens, "goodbooks": goodbooks}
