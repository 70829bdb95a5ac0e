"""Filter expressions: user values are escaped literals, never code."""
import pytest

from app.milvus_filters import ProductFilter, string_literal


@pytest.mark.parametrize("value", ['plain', 'a"b', "a'b", "back\\slash", 'x" or 1==1 or "', "tab\tnew\nline", "ünï©ødé 日本"])
def test_string_literal_round_trips_through_milvus_lite_tokenizer(value):
    from milvus_lite.search.filter.tokens import tokenize

    tokens = tokenize(f"category == {string_literal(value)}")
    strings = [token for token in tokens if token.kind.name == "STRING"]
    assert len(strings) == 1 and strings[0].value == value


def test_control_characters_are_refused():
    with pytest.raises(ValueError):
        string_literal("a\x00b")


def test_expression_combines_every_filter():
    expr = ProductFilter("Books", "O'Reilly", 1.5, 20, True, ("p1",)).expression()
    assert expr == (
        'category == "Books" and brand == "O\'Reilly" and price >= 1.5 and price <= 20.0 '
        'and active == true and not (product_id in ["p1"])'
    )


def test_no_filter_is_empty_expression():
    assert ProductFilter(active=None).expression() == ""
