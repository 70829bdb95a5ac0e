"""Deterministic mock shop catalog with realistic brands, model lines, specs and prices per product type.

The vocabulary (product types, brands and the model lines they sell, specs, variants, description sentences)
is data, in ``mock_catalog_data.json`` beside this module. Product ``i`` is drawn from its own RNG
(``random.Random(f"{seed}:{i}")``), so it is the same whatever ``count`` or ``start`` is, and an interrupted
seeding run can resume where it stopped.
"""
from __future__ import annotations

import calendar
import functools
import json
import math
import random
from pathlib import Path
from typing import Iterator, NamedTuple


class ProductType(NamedTuple):
    """One kind of product (the record's ``sub_category``) and the vocabulary used to invent it."""

    sub_category: str
    noun: str  # how the type is written in the name; contains ``sub_category`` (case-insensitive)
    price_range: tuple[float, float]
    brands: dict[str, tuple[str, ...]]  # brand -> model lines it really sells
    specs: tuple[str, ...]  # name qualifiers (size, fit, edition, ...)
    variants: tuple[str, ...]  # SKU variants, at least 4
    features: tuple[str, ...]  # description sentences
    name_template: str = "{brand} {line} {spec} {noun}"


def _combine(firsts: list[str], seconds: list[str], template: str) -> tuple[str, ...]:
    """Every ``template`` combination of two word lists (variant grids, book titles)."""
    return tuple(template.format(first, second) for first in firsts for second in seconds)


DATA_FILE = Path(__file__).with_name("mock_catalog_data.json")


def _words(value: list[str] | dict) -> tuple[str, ...]:
    """A word list, or ``{"grid": [firsts, seconds], "template": "{} / {}"}`` for every combination of two."""
    return _combine(*value["grid"], value["template"]) if isinstance(value, dict) else tuple(value)


def _product_type(entry: dict) -> ProductType:
    """A product type from its data-file entry (lists become tuples; ``name_template`` is optional)."""
    return ProductType(**{
        **entry,
        "price_range": tuple(entry["price_range"]),
        "brands": {brand: tuple(lines) for brand, lines in entry["brands"].items()},
        "specs": _words(entry["specs"]),
        "variants": _words(entry["variants"]),
        "features": tuple(entry["features"]),
    })


def _load_tables(path: Path = DATA_FILE) -> tuple[dict[str, tuple[ProductType, ...]], dict[str, tuple[str, ...]]]:
    """The product types per category and the category closing sentences, from the data file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    catalog = {category: tuple(map(_product_type, types)) for category, types in data["catalog"].items()}
    closers = {category: tuple(lines) for category, lines in data["category_closers"].items()}
    return catalog, closers


CATALOG, CATEGORY_CLOSERS = _load_tables()
CATEGORIES = tuple(CATALOG)
CREATED_AT_RANGE = (calendar.timegm((2024, 1, 1, 0, 0, 0)), calendar.timegm((2026, 6, 30, 23, 59, 59)))
ACTIVE_SHARE = 0.95
MODEL_NUMBER_SPACE = 10**7  # model numbers are unique for product indices below this
MODEL_NUMBER_MULTIPLIER = 7_368_787  # coprime with 10, so i -> i * m + offset is a bijection mod 10**7


def generate_products(count: int, seed: int = 42, start: int = 0) -> Iterator[dict]:
    """Yield mock products ``start .. count-1``; each is reproducible on its own from ``(seed, i)``."""
    model_offset = random.Random(f"{seed}:model-numbers").randrange(MODEL_NUMBER_SPACE)
    for index in range(start, count):
        yield _make_product(index, seed, model_offset)


def _make_product(index: int, seed: int, model_offset: int) -> dict:
    rng = random.Random(f"{seed}:{index}")
    category = rng.choice(CATEGORIES)
    ptype = rng.choice(CATALOG[category])
    brand = rng.choice(tuple(ptype.brands))
    line = rng.choice(ptype.brands[brand])
    name = ptype.name_template.format(brand=brand, line=line, spec=rng.choice(ptype.specs), noun=ptype.noun)
    model_number = _model_number(brand, line, index, model_offset)
    product_id = f"P{index:07d}"
    skus = _make_skus(rng, product_id, ptype)
    sold_count = int(rng.lognormvariate(4.5, 1.5))
    rating_count = int(sold_count * rng.uniform(0.02, 0.3))
    return {
        "product_id": product_id,
        "name": name,
        "description": _make_description(rng, category, ptype, model_number),
        "brand": brand,
        "category": category,
        "sub_category": ptype.sub_category,
        "price": min(sku["price"] for sku in skus),
        "rating": _make_rating(rng) if rating_count else 0.0,
        "rating_count": rating_count,
        "sold_count": sold_count,
        "active": rng.random() < ACTIVE_SHARE,
        "skus": skus,
        "created_at": rng.randint(*CREATED_AT_RANGE),
    }


def _model_number(brand: str, line: str, index: int, model_offset: int) -> str:
    """A rare, unique token such as ``NI-PEGASU-4821937`` for exact lexical search."""
    serial = (index * MODEL_NUMBER_MULTIPLIER + model_offset) % MODEL_NUMBER_SPACE
    return f"{_code(brand)[:2]}-{_code(line)[:6]}-{serial:07d}"


@functools.lru_cache(maxsize=None)
def _code(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isascii() and ch.isalnum())


def _make_description(rng: random.Random, category: str, ptype: ProductType, model_number: str) -> str:
    """Two to four sentences: one or two type features, maybe a category line, then the model number."""
    sentences = rng.sample(ptype.features, rng.randint(1, 2))
    if rng.random() < 0.5:
        sentences.append(rng.choice(CATEGORY_CLOSERS[category]))
    sentences.append(f"Model no. {model_number}.")
    return " ".join(sentences)


def _make_skus(rng: random.Random, product_id: str, ptype: ProductType) -> list[dict]:
    low, high = ptype.price_range
    base = math.exp(rng.uniform(math.log(low), math.log(high)))
    variants = rng.sample(ptype.variants, rng.randint(1, 4))
    return [
        {
            "sku": f"{product_id}-{number}",
            "price": _shop_price(base if number == 1 else base * rng.uniform(1.0, 1.3)),
            "stock": rng.randint(0, 500),
            "variant": variant,
        }
        for number, variant in enumerate(variants, start=1)
    ]


def _shop_price(amount: float) -> float:
    """Round to a shop-style price ending in .99 (e.g. 1299.99)."""
    return round(math.floor(amount) + 0.99, 2)


def _make_rating(rng: random.Random) -> float:
    """A 1.0..5.0 rating skewed towards 3.5..4.8, like real shop reviews."""
    return round(min(5.0, max(1.0, rng.gauss(4.15, 0.45))), 1)
