"""Tests for the deterministic mock catalog generator."""
import re

import pytest

from seed.mock_catalog import CATALOG, CATEGORIES, CREATED_AT_RANGE, generate_products

SAMPLE_SIZE = 2000
PRODUCT_FIELDS = {
    "product_id", "name", "description", "brand", "category", "sub_category", "price", "rating",
    "rating_count", "sold_count", "active", "skus", "created_at",
}
PRODUCT_TYPES = {(category, ptype.sub_category): ptype for category, types in CATALOG.items() for ptype in types}
MODEL_SENTENCE = re.compile(r"Model no\. ([A-Z0-9]{2}-[A-Z0-9]+-(\d{7}))\.")


@pytest.fixture(scope="module")
def products():
    return list(generate_products(SAMPLE_SIZE))


def test_same_seed_reproduces_and_other_seed_differs():
    first = list(generate_products(50, seed=7))
    assert first == list(generate_products(50, seed=7))
    other = list(generate_products(50, seed=8))
    assert sum(a["description"] != b["description"] for a, b in zip(first, other)) > 40


def test_product_does_not_depend_on_count():
    assert list(generate_products(10)) == list(generate_products(1000))[:10]


def test_start_resumes_the_same_products():
    resumed = list(generate_products(20, start=15))
    assert [p["product_id"] for p in resumed] == [f"P{i:07d}" for i in range(15, 20)]
    assert resumed == list(generate_products(20))[15:]


def test_catalog_tables_are_rich_enough():
    assert len(CATEGORIES) >= 10
    for category, types in CATALOG.items():
        assert len(types) >= 4, category
        for ptype in types:
            assert len(ptype.brands) >= 4 and len(ptype.variants) >= 4, ptype.sub_category
            assert ptype.sub_category in ptype.noun.lower()
    features = [feature for ptype in PRODUCT_TYPES.values() for feature in ptype.features]
    assert len(features) == len(set(features)), "feature sentences must be specific to one product type"


def test_all_categories_present(products):
    assert {p["category"] for p in products} == set(CATEGORIES)


def test_brands_only_make_their_own_product_types(products):
    assert "Apple" not in PRODUCT_TYPES["Sports", "running shoes"].brands
    assert "Nike" not in PRODUCT_TYPES["Electronics", "laptop"].brands
    for product in products:
        ptype = PRODUCT_TYPES[product["category"], product["sub_category"]]
        assert product["brand"] in ptype.brands, product["name"]
        assert any(line in product["name"] for line in ptype.brands[product["brand"]]), product["name"]
        assert product["sub_category"] in product["name"].lower(), product["name"]
    assert not [p for p in products if p["brand"] == "Apple" and p["sub_category"] == "running shoes"]
    assert not [p for p in products if p["brand"] == "Nike" and p["sub_category"] == "laptop"]


def test_fields_follow_the_schema(products):
    for product in products:
        assert set(product) == PRODUCT_FIELDS
        assert re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", product["product_id"])
        assert 0 < len(product["name"]) <= 512 and len(product["description"]) <= 4000
        assert all(len(product[field]) <= 128 for field in ("brand", "category", "sub_category"))
        assert isinstance(product["price"], float) and product["price"] > 0
        assert round(product["price"], 2) == product["price"]
        assert isinstance(product["rating_count"], int) and isinstance(product["sold_count"], int)
        assert product["sold_count"] >= product["rating_count"] >= 0
        if product["rating_count"]:
            assert 1.0 <= product["rating"] <= 5.0 and round(product["rating"], 1) == product["rating"]
        else:
            assert product["rating"] == 0
        assert isinstance(product["active"], bool)
        assert CREATED_AT_RANGE[0] <= product["created_at"] <= CREATED_AT_RANGE[1]


def test_skus_are_consistent_with_the_product(products):
    for product in products:
        skus = product["skus"]
        assert 1 <= len(skus) <= 4
        assert product["price"] == min(sku["price"] for sku in skus)
        assert len({sku["variant"] for sku in skus}) == len(skus)
        for sku in skus:
            assert set(sku) == {"sku", "price", "stock", "variant"}
            assert sku["sku"].startswith(product["product_id"] + "-")
            assert product["price"] <= sku["price"] <= product["price"] * 1.3 + 1
            assert 0 <= sku["stock"] <= 500 and sku["variant"]


def test_prices_stay_in_the_type_range(products):
    for product in products:
        low, high = PRODUCT_TYPES[product["category"], product["sub_category"]].price_range
        assert low <= product["price"] <= high + 1, product["name"]


def test_descriptions_have_two_to_four_sentences_ending_with_model_number(products):
    for product in products:
        body, _, model = product["description"].rpartition(" Model no. ")
        assert MODEL_SENTENCE.fullmatch("Model no. " + model), product["description"]
        assert 1 <= len(re.findall(r"[.!?](?=\s|$)", body)) <= 3, product["description"]


def test_identifiers_and_model_numbers_are_unique(products):
    assert len({p["product_id"] for p in products}) == SAMPLE_SIZE
    sku_codes = [sku["sku"] for p in products for sku in p["skus"]]
    assert len(sku_codes) == len(set(sku_codes))
    model_numbers = [MODEL_SENTENCE.search(p["description"]) for p in products]
    assert len({match.group(1) for match in model_numbers}) == SAMPLE_SIZE
    assert len({match.group(2) for match in model_numbers}) == SAMPLE_SIZE, "the digits alone are a unique token"


def test_about_95_percent_active(products):
    assert 0.92 <= sum(p["active"] for p in products) / SAMPLE_SIZE <= 0.98


def test_popularity_is_heavy_tailed(products):
    sold = sorted(p["sold_count"] for p in products)
    assert sold[-1] > 20 * sold[len(sold) // 2]
    assert 0 < sum(p["rating_count"] == 0 for p in products) < SAMPLE_SIZE * 0.2
