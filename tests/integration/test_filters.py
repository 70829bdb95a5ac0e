"""Filter expressions: user values are escaped literals, never code."""
import pytest

from app.core.catalog import Product
from app.core.indexing import index_products
from app.storage.milvus_filters import ProductFilter, field_equals, string_literal


ODD_VALUES = ['plain', 'a"b', "a'b", "back\\slash", 'x" or 1==1 or "', '\\"', "ünï©ødé 日本", "x" * 128]


def test_string_literals_match_exactly_their_value_in_milvus(res):
    """Each odd category value, written as a literal, selects exactly the one product holding it."""
    products = [Product(product_id=f"literal-{i}", name=f"Literal probe {i}", brand="Probe", category=value,
                        price=1.0) for i, value in enumerate(ODD_VALUES)]
    index_products(products, res.products, res.encoder)
    try:
        for product in products:
            rows = res.products.client.query(
                res.products.collection, filter=field_equals("category", product.category), output_fields=["product_id"]
            )
            assert [row["product_id"] for row in rows] == [product.product_id], product.category
    finally:
        for product in products:
            res.products.delete(product.product_id)


@pytest.mark.parametrize("value", ["a\x00b", "tab\tx", "new\nline"])
def test_control_characters_are_refused(value):
    with pytest.raises(ValueError):
        string_literal(value)
    with pytest.raises(ValueError):
        Product(product_id="p", name="n", category=value)


def test_expression_combines_every_filter():
    expr = ProductFilter("Books", "O'Reilly", 1.5, 20, True, ("p1",)).expression()
    assert expr == (
        'category == "Books" and brand == "O\'Reilly" and price >= 1.5 and price <= 20.0 '
        'and active == true and product_id not in ["p1"]'
    )


def test_no_filter_is_empty_expression():
    assert ProductFilter(active=None).expression() == ""
