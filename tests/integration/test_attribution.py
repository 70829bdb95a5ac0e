"""Attribution: request ids and positions on every list, events joined to the list shown, the impression log."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from app.storage.attribution import ImpressionLog, event_attributions, impressions
from app.storage.events import make_engine


def count(res, table, **where) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with res.events.engine.connect() as connection:
        return connection.execute(query).scalar_one()


def test_every_list_carries_a_request_id_and_positions(client):
    answers = [
        client.get("/search", query_string={"q": "running shoes", "limit": 5}).get_json(),
        client.get("/users/attr-u1/recommendations", query_string={"limit": 5}).get_json(),
    ]
    product_id = answers[0]["results"][0]["product_id"]
    answers.append(client.get(f"/products/{product_id}/similar", query_string={"limit": 5}).get_json())
    for answer in answers:
        assert len(answer["request_id"]) == 32
        assert [item["position"] for item in answer["results"]] == list(range(1, len(answer["results"]) + 1))
        assert "experiment" not in answer
    assert len({answer["request_id"] for answer in answers}) == 3


def test_an_attributed_event_is_joined_to_the_list_shown(client, res):
    answer = client.get("/search", query_string={"q": "wireless headphones", "limit": 5, "user_id": "attr-u2"})
    shown = answer.get_json()
    second = shown["results"][1]["product_id"]
    event = {"event_id": "attr-e1", "user_id": "attr-u2", "product_id": second, "event_type": "view",
             "attribution": {"request_id": shown["request_id"], "position": 2}}
    posted = client.post("/events", json=event)
    assert posted.status_code == 200, posted.get_json()
    res.impressions.flush()
    with res.events.engine.connect() as connection:
        row = connection.execute(select(impressions).where(impressions.c.request_id == shown["request_id"]))
        impression = row.mappings().one()
        attribution = connection.execute(
            select(event_attributions).where(event_attributions.c.event_id == "attr-e1")).mappings().one()
    assert impression["surface"] == "search" and impression["user_id"] == "attr-u2"
    assert impression["product_ids"] == [item["product_id"] for item in shown["results"]]
    assert impression["params"]["mode"] == "hybrid"
    assert attribution["request_id"] == shown["request_id"] and attribution["position"] == 2


@pytest.mark.parametrize("attribution, field, code", [
    ({"request_id": "0" * 32, "position": 1}, "attribution.request_id", "unknown_request_id"),
    ({"position": 99}, "attribution.position", "position_out_of_range"),
    ({"position": 1}, "attribution.position", "position_mismatch"),
    ({"position": 0}, "attribution.position", "invalid_field"),
    ({"request_id": "not-an-id", "position": 1}, "attribution.request_id", "invalid_field"),
])
def test_bad_attribution_is_refused_naming_the_field_and_nothing_is_stored(client, res, attribution, field, code):
    shown = client.get("/search", query_string={"q": "coffee maker", "limit": 3}).get_json()
    attribution = {"request_id": shown["request_id"], **attribution}
    event = {"event_id": f"attr-bad-{code}-{attribution['position']}", "user_id": "attr-u3",
             "product_id": shown["results"][1]["product_id"], "event_type": "view", "attribution": attribution}
    before = res.events.count_events()
    answer = client.post("/events", json=[event])
    assert answer.status_code == 422
    assert answer.get_json()["error"]["code"] == code
    assert answer.get_json()["error"]["field"] == f"0.{field}"
    assert res.events.count_events() == before
    assert count(res, event_attributions, event_id=event["event_id"]) == 0


def test_impressions_reach_the_database_within_the_flush_interval(client, res):
    shown = client.get("/search", query_string={"q": "desk lamp", "limit": 3}).get_json()
    deadline = time.monotonic() + res.settings.impression_flush_seconds + 3
    while count(res, impressions, request_id=shown["request_id"]) == 0:
        assert time.monotonic() < deadline, "the background writer did not write the impression"
        time.sleep(0.1)


def test_retention_deletes_old_impressions_and_their_attributions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'events.db'}")
    log = ImpressionLog(engine, enabled=True, flush_seconds=60, retention_days=1)
    log.init_schema()
    old, new = (log.present("search", "u", [{"product_id": "p1"}], {}) for _ in range(2))
    log._buffer[old["request_id"]]["created_at"] -= 2 * 86400
    log.flush()
    log.attribute([{"event_id": "e-old", "request_id": old["request_id"], "position": 1, "event_type": "view",
                    "experiment_id": None, "variant": None}])
    assert log.purge() == 1
    assert log.find(old["request_id"]) is None and log.find(new["request_id"]) is not None
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(event_attributions)).scalar_one() == 0


def test_attribution_works_on_postgresql(postgres_url):
    engine = make_engine(postgres_url)
    log = ImpressionLog(engine, enabled=True, flush_seconds=60, retention_days=30)
    log.init_schema()
    shown = log.present("recommendations", "u", [{"product_id": "p1"}, {"product_id": "p2"}], {"strategy": "hybrid"})
    assert log.flush() == 1
    assert log.find(shown["request_id"])["product_ids"] == ["p1", "p2"]
    log.attribute([{"event_id": "e1", "request_id": shown["request_id"], "position": 2, "event_type": "purchase",
                    "experiment_id": None, "variant": None}])
    log.attribute([{"event_id": "e1", "request_id": shown["request_id"], "position": 1, "event_type": "purchase",
                    "experiment_id": None, "variant": None}])  # a repeated event id keeps its first attribution
    with engine.connect() as connection:
        assert connection.execute(select(event_attributions.c.position)).scalars().all() == [2]
    engine.dispose()
