"""Tests for the real-catalog importers (small temporary files and the shared data sets)."""
import calendar
import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from seed.importers import PRESETS, ImportStats, parse_mapping, read_catalog, read_movielens
from tests.helpers import SHARED_DATA

DATA = SHARED_DATA
GOODBOOKS = DATA / "goodbooks-10k" / "books.csv"
UCI_RETAIL = DATA / "uci-online-retail-sample" / "online_retail_first10k.csv"
MOVIELENS = DATA / "movielens-latest-small"
requires_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data directory {DATA} is missing")


def write_csv(path: Path, header: list[str], *rows: list) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, *records: dict) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def read_csv_dicts(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --- parse_mapping -----------------------------------------------------------------------------------


def test_parse_mapping_joins_columns_with_plus():
    spec = "product_id=book_id, name=title,brand=authors,description=original_title+language_code"
    assert parse_mapping(spec) == {
        "product_id": "book_id", "name": "title", "brand": "authors",
        "description": ["original_title", "language_code"],
    }
    assert parse_mapping("") == {}


@pytest.mark.parametrize("spec", ["name", "name=", "=title", "name=+"])
def test_parse_mapping_rejects_malformed_items(spec):
    with pytest.raises(ValueError, match="bad mapping item"):
        parse_mapping(spec)


# --- read_catalog on small files ---------------------------------------------------------------------


def test_mapping_and_same_named_columns(tmp_path):
    path = write_csv(tmp_path / "shop.csv", ["code", "title", "price", "category", "unused"],
                     ["A-1", "Blue Kettle", "19.5", "Kitchen", "x"])
    [product] = read_catalog(path, {"product_id": "code", "name": "title"})
    assert product["product_id"] == "A-1" and product["name"] == "Blue Kettle"
    assert product["price"] == 19.5 and product["category"] == "Kitchen"


def test_defaults_fill_missing_fields_and_row_numbers_become_ids(tmp_path):
    path = write_csv(tmp_path / "names.csv", ["name"], ["First"], ["Second"])
    first, second = read_catalog(path)
    assert first == {
        "product_id": "row1", "name": "First", "description": "", "brand": "", "category": "Uncategorized",
        "sub_category": "", "price": 0.0, "rating": 0.0, "rating_count": 0, "sold_count": 0, "active": True,
        "skus": [], "created_at": 0,
    }
    assert second["product_id"] == "row2"
    first["skus"].append("mutated")
    assert second["skus"] == []
    one = write_csv(tmp_path / "one.csv", ["name", "category"], ["X", ""])
    [custom] = read_catalog(one, defaults={"category": "Books", "created_at": 1_700_000_000})
    assert custom["category"] == "Books" and custom["created_at"] == 1_700_000_000


def test_values_are_coerced(tmp_path):
    skus = json.dumps([{"sku": "K-1", "price": "9.999", "stock": "3", "variant": "Red"}])
    path = write_csv(
        tmp_path / "typed.csv",
        ["product_id", "name", "price", "rating", "rating_count", "sold_count", "active", "skus", "created_at"],
        ["A B/c", "Kettle", "12.5", "4.26", "12.0", "7", "yes", skus, "2024-01-01T00:00:00"],
        ["x" * 80, "Toaster", "-3", "7", "", "-2", "FALSE", "", "1700000000"],
        ["id3", "Fan", "1", "0.2", "1", "1", "0", "[]", "1700000000.7"],
        ["id4", "Tea\x07 Cup", "1", "", "", "", "on", "", "1960-01-01"],
    )
    kettle, toaster, fan, cup = read_catalog(path)
    assert kettle["product_id"] == "A_B_c"
    assert (kettle["price"], kettle["rating"], kettle["rating_count"], kettle["sold_count"]) == (12.5, 4.3, 12, 7)
    assert kettle["active"] is True and kettle["created_at"] == calendar.timegm((2024, 1, 1, 0, 0, 0))
    assert kettle["skus"] == [{"sku": "K-1", "price": 10.0, "stock": 3, "variant": "Red"}]
    assert toaster["product_id"] == "x" * 64
    assert (toaster["price"], toaster["rating"], toaster["rating_count"], toaster["sold_count"]) == (-3.0, 5.0, 0, 0)
    assert toaster["active"] is False and toaster["created_at"] == 1_700_000_000
    assert fan["active"] is False and fan["rating"] == 1.0 and fan["created_at"] == 1_700_000_000
    assert cup["name"] == "Tea  Cup" and cup["active"] is True and cup["created_at"] == 0  # never negative


def test_json_lines_with_native_types(tmp_path):
    path = write_jsonl(
        tmp_path / "catalog.jsonl",
        {"id": 5, "name": "Lamp", "active": False, "price": 30, "skus": [{"sku": "L-1", "price": 30, "stock": 2}]},
        {"id": 6, "name": "Rug", "active": True, "price": 80.129},
    )
    lamp, rug = read_catalog(path, {"product_id": "id"})
    assert lamp["product_id"] == "5" and lamp["active"] is False
    assert lamp["skus"] == [{"sku": "L-1", "price": 30.0, "stock": 2, "variant": ""}]
    assert rug["price"] == 80.13 and rug["active"] is True


def test_description_joins_several_columns(tmp_path):
    path = write_csv(tmp_path / "books.csv", ["title", "original", "year", "lang"],
                     ["Dune", "Dune", "1965.0", "eng"], ["Emma", "Emma", "", "  "])
    dune, emma = read_catalog(path, {"name": "title", "description": ["original", "year", "lang"]})
    assert dune["description"] == "Dune. 1965. eng"
    assert emma["description"] == "Emma"


def test_rows_with_empty_names_are_skipped_and_counted(tmp_path):
    path = write_csv(tmp_path / "gaps.csv", ["product_id", "name"], ["a", "Chair"], ["b", ""], ["c", "   "], ["d", "Desk"])
    stats = ImportStats()
    assert [p["product_id"] for p in read_catalog(path, stats=stats)] == ["a", "d"]
    assert stats == ImportStats(rows=4, skipped_empty_name=2, merged_duplicates=0)


def test_long_text_is_cut_at_a_list_boundary(tmp_path):
    authors = ", ".join(f"Author Number {n}" for n in range(20))
    path = write_csv(tmp_path / "long.csv", ["name", "brand"], ["Anthology", authors])
    [product] = read_catalog(path)
    assert len(product["brand"]) <= 128 and authors.startswith(product["brand"] + ", ")


def test_dedupe_keeps_first_row_and_sums_counts(tmp_path):
    path = write_csv(tmp_path / "lines.csv", ["product_id", "name", "price", "sold_count"],
                     ["A", "Mug", "3", "5"], ["B", "Jar", "2", "1"], ["A", "Mug v2", "4", "-2"], ["B", "Jar", "2", "-9"])
    stats = ImportStats()
    mug, jar = read_catalog(path, dedupe=True, stats=stats)
    assert (mug["name"], mug["price"], mug["sold_count"]) == ("Mug", 3.0, 3)
    assert jar["sold_count"] == 0  # net returns never make the count negative
    assert stats.merged_duplicates == 2


def test_unknown_column_raises(tmp_path):
    path = write_csv(tmp_path / "shop.csv", ["id", "title"], ["1", "Pen"])
    with pytest.raises(ValueError, match="no column"):
        read_catalog(path, {"name": "headline"})
    with pytest.raises(ValueError, match="no column"):
        read_catalog(path, {"name": "title", "description": ["title", "blurb"]})


def test_unknown_field_and_numeric_join_raise(tmp_path):
    path = write_csv(tmp_path / "shop.csv", ["id", "title", "cost"], ["1", "Pen", "2"])
    with pytest.raises(ValueError, match="unknown product fields"):
        read_catalog(path, {"title": "title"})
    with pytest.raises(ValueError, match="only text fields"):
        read_catalog(path, {"price": ["cost", "id"]})


def test_unknown_extension_raises(tmp_path):
    path = tmp_path / "catalog.xlsx"
    path.write_text("name\nPen\n")
    with pytest.raises(ValueError, match="unsupported catalog file"):
        read_catalog(path)


def test_values_that_do_not_parse_are_left_for_validation_to_reject(tmp_path):
    from pydantic import ValidationError

    from app.core.catalog import Product

    path = write_csv(tmp_path / "bad.csv", ["name", "price", "active"], ["Pen", "1", "yes"], ["Cup", "cheap", "maybe"])
    pen, cup = read_catalog(path)
    assert (cup["price"], cup["active"]) == ("cheap", "maybe")
    Product.model_validate(pen)
    with pytest.raises(ValidationError):
        Product.model_validate(cup)


# --- presets on the shared data sets -----------------------------------------------------------------


@requires_data
def test_goodbooks_preset():
    books = list(read_catalog(GOODBOOKS, **PRESETS["goodbooks"]))
    assert len(books) == 10_000 and len({b["product_id"] for b in books}) == 10_000
    assert {(b["category"], b["sub_category"]) for b in books} == {("Books", "book")}
    assert all(1.0 <= b["rating"] <= 5.0 and b["rating_count"] > 0 and len(b["brand"]) <= 128 for b in books)
    hunger_games = books[0]
    assert hunger_games["product_id"] == "1" and hunger_games["brand"] == "Suzanne Collins"
    assert hunger_games["description"] == "The Hunger Games. Suzanne Collins. 2008. eng"
    assert (hunger_games["rating"], hunger_games["rating_count"]) == (4.3, 4_780_653)


@requires_data
def test_uci_retail_preset_deduplicates_and_sums_quantity():
    stats = ImportStats()
    products = list(read_catalog(UCI_RETAIL, **PRESETS["uci-retail"], stats=stats))
    lines = [row for row in read_csv_dicts(UCI_RETAIL) if row["Description"].strip()]
    ids = [p["product_id"] for p in products]
    assert len(ids) == len(set(ids)) == len({row["StockCode"] for row in lines})
    assert stats.rows == 10_000 and stats.skipped_empty_name == 10_000 - len(lines)
    heart = next(p for p in products if p["product_id"] == "85123A")
    heart_lines = [row for row in lines if row["StockCode"] == "85123A"]
    assert len(heart_lines) > 1
    assert heart["sold_count"] == max(0, sum(int(row["Quantity"]) for row in heart_lines))
    assert heart["price"] == float(heart_lines[0]["UnitPrice"])
    assert heart["name"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert all(p["sold_count"] >= 0 for p in products)


# --- MovieLens ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def movies():
    if not MOVIELENS.is_dir():
        pytest.skip(f"MovieLens data {MOVIELENS} is missing")
    return {movie["product_id"]: movie for movie in read_movielens(MOVIELENS)}


@requires_data
def test_movielens_has_one_product_per_movie(movies):
    assert len(movies) == len(read_csv_dicts(MOVIELENS / "movies.csv")) == 9742


@requires_data
def test_movielens_toy_story(movies):
    toy_story = movies["ml1"]
    ratings = [float(row["rating"]) for row in read_csv_dicts(MOVIELENS / "ratings.csv") if row["movieId"] == "1"]
    assert toy_story["name"] == "Toy Story (1995)" and toy_story["category"] == "Adventure"
    assert toy_story["sub_category"] == "movie" and toy_story["created_at"] == calendar.timegm((1995, 1, 1, 0, 0, 0))
    assert toy_story["rating_count"] == len(ratings)
    assert toy_story["rating"] == round(sum(ratings) / len(ratings), 1)
    assert toy_story["description"].startswith("Genres: Adventure, Animation, Children, Comedy, Fantasy. Tags: ")
    assert "Pixar" in toy_story["description"]


@requires_data
def test_movielens_tags_in_description(movies):
    description = movies["ml60756"]["description"]  # Step Brothers
    assert "Highly quotable" in description and "will ferrell" in description


@requires_data
def test_movielens_ratings_fit_the_schema(movies):
    for movie in movies.values():
        assert (movie["rating"] == 0) == (movie["rating_count"] == 0)
        assert movie["rating"] == 0 or 1.0 <= movie["rating"] <= 5.0
        assert movie["created_at"] >= 0


def test_movielens_small_directory(tmp_path):
    write_csv(tmp_path / "movies.csv", ["movieId", "title", "genres"],
              ["1", "Heat (1995)", "Action|Crime"], ["2", "Untitled Pilot", "(no genres listed)"],
              ["3", "Series (2006–2007) ", "Drama"], ["4", "Metropolis (1927)", "Sci-Fi"])
    tags = [["9", "1", "slow", "0"]] + [["9", "1", "Heist", "0"]] * 2 + [["8", "1", "heist", "0"]]
    tags += [["9", "1", f"tag{n:02d}", "0"] for n in range(30)]
    write_csv(tmp_path / "tags.csv", ["userId", "movieId", "tag", "timestamp"], *tags)
    heat, pilot, series, metropolis = read_movielens(tmp_path)
    assert heat["category"] == "Action" and heat["rating"] == 0 and heat["rating_count"] == 0
    description_tags = heat["description"].split("Tags: ")[1].rstrip(".").split(", ")
    assert description_tags[0] == "Heist" and len(description_tags) == 20
    assert Counter(tag.lower() for tag in description_tags)["heist"] == 1
    assert pilot["category"] == "Movies" and pilot["created_at"] == 0 and pilot["description"] == ""
    assert series["name"] == "Series (2006–2007)" and series["created_at"] == calendar.timegm((2006, 1, 1, 0, 0, 0))
    assert metropolis["created_at"] == 0  # created_at is never negative
