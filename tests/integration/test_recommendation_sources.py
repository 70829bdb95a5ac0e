"""Recommendation sources one by one, exclusion, the blend's breakdown and the model swap, against the real
stores (Milvus Lite, SQLite) and a small NCF model served from its own models directory."""
import numpy as np
import pytest
from scipy import sparse

from app.core.catalog import Product
from app.core.collaborative import ServedModel
from app.core.indexing import index_products
from app.core.recommend import SOURCES, STRATEGY_SOURCES, Recommender
from app.core.training_data import event_interactions
from app.storage.collaborative_index import CollaborativeIndex, collection_of
from app.storage.events import EVENT_TYPES, Event
from app.storage.milvus_filters import ProductFilter
from ncf.data import from_records
from ncf.blender import PROPOSERS
from ncf.item_knn import ItemKNN
from ncf.recommender import NCFRecommender
from ncf.train import TrainConfig
from tests.helpers import ingest_mock_interactions, products_of_another_process
from tests.integration.test_events import active_products

USERS = [f"src-u{n:05d}" for n in range(1, 31)]


def publish(res, models, seed: int, stamp: str) -> NCFRecommender:
    interactions = event_interactions(res.settings.resolved_database_url, res.settings.event_weights)
    config = TrainConfig(epochs=2, batch_size=256, embed_dim=8, layers=(16, 8), seed=seed, progress=False, threads=1)
    model = NCFRecommender(config).fit(interactions)
    model.metrics = {}
    model.save(models / f"ncf-{stamp}-{seed:06x}")
    return model


@pytest.fixture(scope="module")
def served(res, catalog, tmp_path_factory):
    ingest_mock_interactions(res, catalog, len(USERS), 11, "src-u")
    models = tmp_path_factory.mktemp("source-models")
    model = publish(res, models, 1, "20260301T000000Z")
    return models, model


@pytest.fixture
def recommender(res, served):
    return Recommender(res.products, res.users, res.events, 30, ServedModel(served[0], 0.0), 0.0,
                       exclude=EVENT_TYPES)


def active_in(res, product_ids):
    rows = res.products.get(product_ids, fields=("product_id", "active"))
    return [product_id for product_id in product_ids if product_id in rows and rows[product_id]["active"]]


def item_to_item(res, model, user) -> list[str]:
    """The active products item-kNN proposes from the user's 5 latest products, best first."""
    recent, touched = res.events.recent_products(user, 5), res.events.products_of(user, EVENT_TYPES)
    return active_in(res, [p for p, _ in model.item_knn.recommend_recent(recent, 60, touched)])


def test_each_source_alone_ranks_by_its_own_signal(res, served, recommender):
    model = served[1]
    # a user whose latest products have 10 neighbours (how many do depends on the events earlier tests added)
    user = next(user for user in USERS if len(item_to_item(res, model, user)) >= 10)
    touched = res.events.products_of(user, EVENT_TYPES)
    recent = res.events.recent_products(user, 5)
    expected = {
        "ncf": active_in(res, [p for p, _ in model.recommend(user, 60, touched)])[:10],
        "item": item_to_item(res, model, user)[:10],
        "content": [hit.product["product_id"] for hit in res.products.nearest(
            res.users.get([user])[user].vector / np.linalg.norm(res.users.get([user])[user].vector), 10,
            ProductFilter(exclude_ids=tuple(sorted(touched))), fields=("product_id",))],
        "trending": list(recommender.popular(10, ProductFilter(exclude_ids=tuple(sorted(touched))), ("product_id",))),
    }
    for strategy, source in STRATEGY_SOURCES.items():
        result = recommender.recommend(user, strategy, 10)
        ids = [item.product["product_id"] for item in result.items]
        assert result.strategy == strategy and result.weights == {source: 1.0}, strategy
        assert len(ids) == 10 and not set(ids) & touched, strategy
        assert all(item.sources == [source] for item in result.items), strategy
        if strategy in expected:
            assert ids == expected[strategy], strategy
    popular = [item.product["product_id"] for item in recommender.recommend(user, "popular", 10).items]
    counts = res.events.popularity_of(popular, all_time=True)
    assert [counts[p] for p in popular] == sorted(counts.values(), reverse=True)
    similar = recommender.recommend(user, "similar", 10).items
    recent_rows = res.products.get(recent, fields=("product_id", "category"))
    assert {item.product["category"] for item in similar} & {row["category"] for row in recent_rows.values()}


def test_hybrid_is_the_blend_of_the_union_that_evaluation_tunes(res, served, recommender):
    user = USERS[1]
    result = recommender.recommend(user, "hybrid", 20, weights={"item": 2.0, "collaborative": 1.0, "content": 1.0})
    assert result.weights == {"item": 0.5, "collaborative": 0.25, "content": 0.25}
    assert result.model == "ncf-20260301T000000Z-000001"
    candidates = recommender.candidate_union(user)
    order = recommender.blend(candidates, {"item": 2.0, "collaborative": 1.0, "content": 1.0})[0]
    assert [item.product["product_id"] for item in result.items] == [candidates.product_ids[i] for i in order[:20]]
    for item in result.items:
        assert abs(item.score - sum(result.weights.get(s, 0) * (v or 0) for s, v in item.scores.items())) < 1e-5
        assert set(item.sources) <= {source for source, value in item.scores.items() if value is not None}
        assert set(item.scores) == set(SOURCES)
    for source in ("collaborative", "item", "content"):  # each source's rank scores follow its raw scores
        raw, ranked = candidates.raw[source], recommender.blend(candidates, {source: 1.0})[2][source]
        finite = np.isfinite(raw)
        assert np.array_equal(np.argsort(-raw[finite], kind="stable"), np.argsort(-ranked[finite], kind="stable"))
        assert np.nanmax(ranked) == 1.0


def test_the_learned_blend_ranks_by_the_models_blender_and_falls_back_to_the_rank_blend(res, served, monkeypatch):
    recommender = Recommender(res.products, res.users, res.events, 30, ServedModel(served[0], 0.0), 0.0,
                              exclude=EVENT_TYPES, blend="learned")
    user = USERS[3]
    result = recommender.recommend(user, "hybrid", 20)
    assert result.blend == "learned" and result.weights == {} and result.strategy == "hybrid"
    candidates = recommender.candidate_union(user)
    assert candidates.learned is not None and len(candidates.learned) == len(candidates.product_ids)
    order = recommender.blend(candidates, recommender.weights, learned=True)[0]
    assert [item.product["product_id"] for item in result.items] == [candidates.product_ids[i] for i in order[:20]]
    assert [item.score for item in result.items] == sorted((item.score for item in result.items), reverse=True)
    for item in result.items:  # the breakdown stays: every source's rank score, who proposed it
        assert set(item.scores) == set(SOURCES) and item.sources
    assert recommender.recommend(user, "hybrid", 20, weights={"item": 1.0}).blend == "rank"  # weights: rank
    assert recommender.recommend(user, "hybrid", 20, blend="rank").blend == "rank"
    assert recommender.recommend(user, "item", 20).blend == "rank"  # a single source is not blended
    newcomer = "src-newcomer"  # events after the model was trained: the model does not know the user
    res.ingestor.ingest([Event(f"src-new-{n}", newcomer, product_id, "purchase", None, 1.0e9 + n)
                         for n, product_id in enumerate(candidates.product_ids[:3])])
    assert recommender.recommend(newcomer, "hybrid", 10).blend == "rank"
    monkeypatch.setattr(recommender.collaborative.current()[1], "blender", None)  # a model without a blender
    assert recommender.recommend(user, "hybrid", 20).blend == "rank"


def test_the_learned_blend_asks_its_own_sources_alone_unless_they_cannot_fill_the_answer(res, served, catalog,
                                                                                         monkeypatch):
    recommender = Recommender(res.products, res.users, res.events, 30, ServedModel(served[0], 0.0), 0.0,
                              exclude=EVENT_TYPES, blend="learned")
    user = USERS[4]
    asked = []  # the reads only the content sources need
    nearest, users_get, candidate_rows = res.products.nearest, res.users.get, res.products.candidate_rows
    monkeypatch.setattr(res.products, "nearest", lambda *a, **k: asked.append("search") or nearest(*a, **k))
    monkeypatch.setattr(res.users, "get", lambda ids: asked.append("user vector") or users_get(ids))
    monkeypatch.setattr(res.products, "candidate_rows", lambda ids, vectors=True: (
        vectors and asked.append("vectors")) or candidate_rows(ids, vectors))
    result = recommender.recommend(user, "hybrid", 20)
    assert asked == [] and result.blend == "learned" and len(result.items) == 20
    assert len(recommender.recommend(user, "ncf", 10).items) == 10 and asked == []  # nor does a model source alone
    everything = recommender.candidate_union(user)  # every source asked, as the rank blend asks them
    assert asked
    order = recommender.blend(everything, {}, learned=True)[0]
    assert ids_of(result) == [everything.product_ids[i] for i in order[:20]]
    assert [item.score for item in result.items] == [round(float(everything.learned[i]), 6) for i in order[:20]]
    for item in result.items:  # the sources not asked: no score; who of those asked proposed it
        assert item.scores["content"] is item.scores["similar"] is item.scores["trending"] is None
        assert item.scores["collaborative"] is not None and item.sources and set(item.sources) <= set(PROPOSERS)
    for other in USERS[::3]:  # the same order as from every source (ties in its rank features included)
        for category in (None, "Sports", "Books"):
            everything = recommender.candidate_union(other, category=category)
            order = recommender.blend(everything, {}, learned=True)[0]
            assert ids_of(recommender.recommend(other, "hybrid", 10, category=category)) == [
                everything.product_ids[i] for i in order[:10]], (other, category)
    # a category where the blender's candidates cannot fill the answer: every source is asked, the order is the same
    unions = {category: recommender.candidate_union(user, category=category)
              for category in sorted({product["category"] for product in catalog})}
    category, union = min(((category, union) for category, union in unions.items()
                           if len(union.product_ids) > union.scored.sum()), key=lambda pair: pair[1].scored.sum())
    limit = int(union.scored.sum()) + 1
    asked.clear()
    narrow = recommender.recommend(user, "hybrid", limit, category=category)
    assert "search" in asked and narrow.blend == "learned"
    order = recommender.blend(union, {}, learned=True)[0]
    assert ids_of(narrow) == [union.product_ids[i] for i in order[:limit]]
    assert all(item.scores["content"] is not None and item.product["category"] == category for item in narrow.items)


def test_a_request_never_mixes_two_models(res, served, recommender, monkeypatch):
    models, first = served
    user = USERS[2]
    before = recommender.recommend(user, "hybrid", 30)
    assert before.model == "ncf-20260301T000000Z-000001"
    nearest = res.products.nearest
    swapped = {}

    def publish_during_the_request(*args, **kwargs):  # between the snapshot and the scoring
        if not swapped:
            swapped["model"] = publish(res, models, 2, "20260302T000000Z")
        return nearest(*args, **kwargs)

    monkeypatch.setattr(res.products, "nearest", publish_during_the_request)
    during = recommender.recommend(user, "hybrid", 30)
    assert swapped and during.model == before.model
    assert [item.scores for item in during.items] == [item.scores for item in before.items]
    monkeypatch.setattr(res.products, "nearest", nearest)
    after = recommender.recommend(user, "hybrid", 30)
    assert after.model == "ncf-20260302T000000Z-000002"
    ids = [item.product["product_id"] for item in after.items if item.scores["collaborative"] is not None]
    by_new = swapped["model"].score_ids(user, ids)
    ranks = [item.scores["collaborative"] for item in after.items if item.scores["collaborative"] is not None]
    assert np.array_equal(np.argsort(-by_new, kind="stable"), np.argsort(-np.array(ranks), kind="stable"))


def test_exclusion_by_event_type(client, catalog):
    mats = active_products(catalog, sub_category="yoga mat")[:4]
    for product, event_type in zip(mats, ("view", "add_to_cart", "purchase", "rating")):
        body = {"user_id": "src-excluder", "product_id": product["product_id"], "event_type": event_type}
        assert client.post("/events", json=body | ({"rating": 4} if event_type == "rating" else {})).status_code == 200
    ids = dict(zip(("view", "add_to_cart", "purchase", "rating"), (p["product_id"] for p in mats)))

    def shown(**params):
        response = client.get("/users/src-excluder/recommendations",
                              query_string={"strategy": "similar", "limit": 100, **params})
        assert response.status_code == 200, response.json
        return {item["product_id"] for item in response.json["results"]}

    assert set(ids.values()) <= shown(exclude="none")
    assert set(ids.values()) <= shown(exclude_purchased="false")
    assert shown() & set(ids.values()) == {ids["view"], ids["add_to_cart"]}  # default: purchased,rated
    assert shown(exclude="viewed") & set(ids.values()) == {ids["add_to_cart"], ids["purchase"], ids["rating"]}
    assert not shown(exclude="purchased,rated,carted,viewed") & set(ids.values())


def test_item_knn_weighs_co_occurrence_by_closeness_in_time_and_survives_a_round_trip(tmp_path):
    # in time order, users: a b c, a b, a d; distance 1 counts e1, 2 counts e2 (distance_scale 1) →
    # sim(a, b) = 2 e1 / sqrt(3 * 2), sim(a, c) = e2 / sqrt(3), sim(a, d) = e1 / sqrt(3), sim(b, c) = e1 / sqrt(2)
    interactions = from_records(["u1", "u1", "u1", "u2", "u2", "u3", "u3"], ["a", "b", "c", "a", "b", "a", "d"],
                                [1.0] * 7, [1.0, 2.0, 3.0, 1.0, 2.0, 1.0, 2.0])
    e1, e2 = np.exp(-1.0), np.exp(-2.0)
    knn = ItemKNN(distance_scale=1.0).fit(interactions)
    scores = knn.score_recent(["a"], ["b", "c", "d", "a", "unknown"])
    assert np.allclose(scores[:4], [2 * e1 / np.sqrt(6), e2 / np.sqrt(3), e1 / np.sqrt(3), 0.0]) and np.isnan(scores[4])
    assert scores[2] > scores[1]  # d came right after a, c two items later: both seen with a once
    assert knn.recommend_recent(["b"], 3) == [("a", pytest.approx(2 * e1 / np.sqrt(6))),
                                              ("c", pytest.approx(e1 / np.sqrt(2)))]
    # the newest item counts 1, the next `decay`: b's neighbour c before c's neighbour b; equal weights tie
    assert [p for p, _ in knn.recommend_recent(["b", "c"], 3, exclude=["a"], decay=0.5)] == ["c", "b"]
    assert [p for p, _ in knn.recommend_recent(["b", "c"], 3, exclude=["a"], decay=1.0)] == ["b", "c"]  # by index
    assert np.allclose(knn.score_recent(["c", "d"], ["a"], decay=0.5), [e2 / np.sqrt(3) + 0.5 * e1 / np.sqrt(3)])
    assert ItemKNN(window=1, distance_scale=1.0).fit(interactions).score_recent(["a"], ["c"])[0] == 0.0
    assert [p for p, _ in ItemKNN(neighbours=1).fit(interactions).recommend_recent(["a"], 3)] == ["b"]
    # the models' contract: a user's items are those it was fit on, unweighted (u1: a, b, c)
    u1, items = interactions.user_ids.index("u1"), interactions.item_ids.indices(["d", "a"])
    assert np.allclose(knn.score(np.array([u1, u1]), items), [e1 / np.sqrt(3), 2 * e1 / np.sqrt(6) + e2 / np.sqrt(3)])
    loaded = ItemKNN.load(knn.save(tmp_path / "knn"))
    assert (loaded.similarities != knn.similarities).nnz == 0 and sparse.isspmatrix_csr(loaded.similarities)
    assert loaded.recommend("u1", 3) == knn.recommend("u1", 3) and [p for p, _ in loaded.recommend("u1", 3)] == ["b", "a", "c"]


def retrieving(res, models, retrieval: str) -> Recommender:
    """A recommender over `models` whose collaborative candidates come by `retrieval` (ann: from Milvus)."""
    index = CollaborativeIndex(res.client)
    return Recommender(res.products, res.users, res.events, 30, ServedModel(models, 0.0, index), 0.0,
                       exclude=EVENT_TYPES, retrieval=retrieval, index=index)


def ids_of(result) -> list[str]:
    return [item.product["product_id"] for item in result.items]


def test_collaborative_candidates_by_ann_over_the_gmf_vectors_the_model_published(res, served, tmp_path,
                                                                                   monkeypatch):
    model, user = publish(res, tmp_path, 3, "20260303T000000Z"), USERS[3]
    ann, version = retrieving(res, tmp_path, "ann"), "ncf-20260303T000000Z-000003"
    searched = []
    search = ann.index.search
    monkeypatch.setattr(ann.index, "search", lambda *args, **kwargs: searched.append(args[0]) or search(*args, **kwargs))
    result = ann.recommend(user, "ncf", 10)
    assert result.model == version and searched == [version]
    name = collection_of(version)
    assert res.client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == len(model.item_ids)
    stored = res.client.get(name, ids=model.item_ids.ids[:5], output_fields=["product_id", "vector"])
    published = dict(zip(model.item_ids.ids, model.tables.gmf_items()))
    assert all(np.allclose(row["vector"], published[row["product_id"]], atol=1e-6) for row in stored)
    # the index is FLAT (exact): ANN finds what the GMF part ranks first in process; NeuMF orders them
    touched = res.events.products_of(user, EVENT_TYPES)
    pool = [product_id for product_id, _ in model.retrieve(user, ann.retrieval_candidates, touched)]
    ids = ids_of(result)
    assert len(ids) == 10 and set(ids) <= set(pool) and not set(ids) & touched
    assert ids == ids_of(retrieving(res, tmp_path, "gmf").recommend(user, "ncf", 10))
    scores = model.score_ids(user, ids)
    assert list(scores) == sorted(scores, reverse=True)
    best_of_pool = active_in(res, [pool[i] for i in np.argsort(-model.score_ids(user, pool), kind="stable")])
    assert ids == best_of_pool[:10]


def test_a_model_swap_never_mixes_one_models_vectors_with_anothers_weights(res, served, tmp_path, monkeypatch):
    publish(res, tmp_path, 4, "20260304T000000Z")
    ann, user = retrieving(res, tmp_path, "ann"), USERS[4]
    versions = [f"ncf-2026030{n}T000000Z-00000{n}" for n in (4, 5, 6)]
    before = ann.recommend(user, "hybrid", 30)
    assert before.model == versions[0]
    search, searched = ann.index.search, []

    def publish_during_the_search(version, *args, **kwargs):  # after the snapshot, before the scoring
        if not searched:
            publish(res, tmp_path, 5, "20260305T000000Z")
            assert ann.collaborative.current()[0] == versions[1]  # served (and published) now
        searched.append(version)
        return search(version, *args, **kwargs)

    monkeypatch.setattr(ann.index, "search", publish_during_the_search)
    during = ann.recommend(user, "hybrid", 30)
    assert searched[0] == versions[0] and during.model == versions[0]
    assert [(ids_of(during), [item.scores for item in during.items])] == [(ids_of(before),
                                                                           [item.scores for item in before.items])]
    after = ann.recommend(user, "hybrid", 30)
    assert after.model == versions[1] and searched[1] == versions[1]
    assert {collection_of(v) for v in versions[:2]} <= set(res.client.list_collections())
    publish(res, tmp_path, 6, "20260306T000000Z")
    assert ann.recommend(user, "ncf", 10).model == versions[2]
    collections = set(res.client.list_collections())
    assert collection_of(versions[0]) not in collections  # older than the last two: dropped
    assert {collection_of(v) for v in versions[1:]} <= collections
    # a process that serves a version whose collection is gone scores the GMF vectors itself
    res.client.drop_collection(collection_of(versions[2]))
    exact = retrieving(res, tmp_path, "gmf").recommend(user, "ncf", 10)
    assert ids_of(ann.recommend(user, "ncf", 10)) == ids_of(exact)


def test_user_state_is_kept_until_the_users_next_event(client, res, served, recommender, monkeypatch, catalog):
    user = USERS[6]
    reads = []
    get = res.users.get
    monkeypatch.setattr(res.users, "get", lambda ids: reads.append(list(ids)) or get(ids))
    first = recommender.recommend(user, "similar", 10)
    again = recommender.recommend(user, "similar", 10)
    assert reads == [[user]] and ids_of(first) == ids_of(again)
    product = next(p["product_id"] for p in catalog if p["active"] and p["product_id"] not in ids_of(first))
    assert client.post("/events", json={"user_id": user, "product_id": product, "event_type": "purchase"}
                       ).status_code == 200
    reads.clear()  # the ingestion's own
    after = recommender.recommend(user, "similar", 10)
    assert reads == [[user]] and product not in ids_of(after)
    assert recommender.user_states.get(user).recent[0] == product


def test_the_answer_is_read_afresh_over_candidates_filtered_on_cached_rows(res, served, recommender, catalog):
    user = USERS[7]
    first = ids_of(recommender.recommend(user, "ncf", 5))  # the union's rows are now in the process's cache
    leader, runner_up = (next(p for p in catalog if p["product_id"] == product_id) for product_id in first[:2])
    category = runner_up["category"]
    in_category = ids_of(recommender.recommend(user, "ncf", 5, category=category))
    assert runner_up["product_id"] in in_category
    other_process = products_of_another_process(res)  # its writes reach this process's cache when they expire
    try:
        index_products([Product.model_validate({**leader, "active": False}),
                        Product.model_validate({**runner_up, "category": "Elsewhere"})], other_process, res.encoder)
        assert res.products.candidate_rows([leader["product_id"]])[leader["product_id"]]["active"] is True
        again = ids_of(recommender.recommend(user, "ncf", 5))
        assert len(again) == 5 and leader["product_id"] not in again and again[0] == first[1]
        moved = recommender.recommend(user, "ncf", 5, category=category).items
        kept = [product_id for product_id in in_category if product_id not in first[:2]]
        assert [item.product["product_id"] for item in moved][:len(kept)] == kept
        assert all(item.product["category"] == category for item in moved)
    finally:
        index_products([Product.model_validate(leader), Product.model_validate(runner_up)], res.products,
                       res.encoder)
