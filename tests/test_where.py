"""The filter language: one semantics (JSON's) in Python and in every store's SQL, every operator."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import clustered

from lshrs import where
from lshrs.stores.redis import RedisStore

# Documents chosen where JSON's semantics and a naive one part ways: bools and numbers,
# ints and floats, strings that look like numbers, lists, nulls, missing keys, no metadata.
DOCS = [
    {"flag": True, "n": 1, "s": "abc", "tags": ["a", "b"]},
    {"flag": 1, "n": 1.0, "s": "ABC", "tags": ["a", 1, True]},
    {"flag": False, "n": 2.5, "s": "a_c%", "tags": []},
    {"flag": 0, "n": "2", "s": "abd", "tags": "a"},
    {"n": None, "s": "", "year": 2021, "lang": "en"},
    {"n": -3, "s": "zeta", "year": 2023, "lang": "de", "tags": [None, 2.0]},
    {"year": 2024, "lang": "en", "s": "über"},
    {},
    None,
    {"n": 9_007_199_254_740_993, "s": "a\nbc", "nested": {"a": 1}, "list": [1, 2]},
]

FILTERS = [
    {"flag": True},
    {"flag": 1},
    {"flag": {"$ne": True}},
    {"n": 1},
    {"n": 1.0},
    {"n": "2"},
    {"n": None},
    {"n": {"$gt": 1}},
    {"n": {"$gte": 1, "$lt": 3}},
    {"n": {"$lte": -3}},
    {"year": {"$between": [2021, 2023]}},
    {"n": {"$gt": 9_007_199_254_740_992}},
    {"s": {"$gt": "abc"}},
    {"s": {"$lt": "a"}},
    {"s": {"$in": ["abc", "zeta", 1]}},
    {"s": {"$nin": ["abc", "ABC"]}},
    {"n": {"$in": [1, None]}},
    {"n": {"$in": []}},
    {"n": {"$nin": []}},
    {"year": {"$exists": True}},
    {"year": {"$exists": False}},
    {"tags": {"$contains": "a"}},
    {"tags": {"$contains": 1}},
    {"tags": {"$contains": True}},
    {"tags": {"$contains": None}},
    {"tags": {"$contains": 2}},
    {"s": {"$contains": "b"}},
    {"tags": {"$contains": ""}},
    {"s": {"$icontains": "B"}},
    {"tags": {"$size": 0}},
    {"tags": {"$size": 2}},
    {"$or": [{"tags": {"$exists": False}}, {"tags": None}, {"tags": {"$size": 0}}]},
    {"s": {"$like": "a%"}},
    {"s": {"$like": "a_c"}},
    {"s": {"$like": "a_c%"}},
    {"s": {"$like": "%b%"}},
    {"s": {"$like": "ü%"}},
    {"s": {"$like": "a[b]*"}},
    {"s": {"$ilike": "abc"}},
    {"lang": "en", "year": {"$gte": 2022}},
    {"$or": [{"lang": "de"}, {"flag": False}]},
    {"$and": [{"n": {"$exists": True}}, {"$not": {"n": {"$gt": 0}}}]},
    {"$not": {"year": {"$exists": True}}},
    {"year": {"$not": {"$gte": 2023}}},
    {"nested": {"$exists": True}, "list": {"$contains": 2}},
    {"tags": ["a", 1, True]},
    {"tags": ["a", 1, 1]},
    {"nested": {"a": 1.0}},
    {"tags": {"$in": [["a", "b"], []]}},
    {"tags": {"$ne": ["a", "b"]}},
    {"list": "[1,2]"},
    {},
    {"$or": [{}, {"n": 1}]},
    {"list": "[1, 2]"},
]


def test_json_semantics_in_python():
    def ids(f):
        return [i for i, d in enumerate(DOCS) if where.matches(where.parse(f), d)]

    assert ids({"flag": True}) == [0]  # a bool is not the number 1
    assert ids({"flag": 1}) == [1]
    assert ids({"n": 1}) == ids({"n": 1.0}) == [0, 1]  # 1 == 1.0
    assert ids({"n": "2"}) == [3] and ids({"n": {"$gt": 1}}) == [2, 9]  # a string is not a number
    assert ids({"n": None}) == [4]  # null, not missing
    assert ids({"flag": {"$ne": True}}) == [1, 2, 3, 4, 5, 6, 7, 8, 9]  # missing keys pass $ne
    assert ids({"tags": {"$contains": 1}}) == [1] and ids({"tags": {"$contains": 2}}) == [5]
    assert ids({"s": {"$contains": "b"}}) == [0, 3, 6, 9] and ids({"tags": {"$contains": "a"}}) == [0, 1, 3]
    assert ids({"s": {"$icontains": "B"}}) == [0, 1, 3, 6, 9]
    assert ids({"tags": {"$size": 2}}) == [0, 5] and ids({"tags": {"$size": 0}}) == [2]
    assert ids({"tags": ["a", 1, True]}) == [1] and ids({"tags": ["a", 1, 1]}) == []  # True is not 1 in a list
    assert ids({"nested": {"a": 1.0}}) == [9]
    assert ids({"s": {"$like": "a_c"}}) == [0] and ids({"s": {"$like": "a_c%"}}) == [0, 2]
    assert ids({"s": {"$like": "%b%"}}) == [0, 3, 6, 9]  # % spans a newline
    assert ids({"s": {"$ilike": "abc"}}) == [0, 1]
    assert ids({"year": {"$not": {"$gte": 2023}}}) == [0, 1, 2, 3, 4, 7, 8, 9]


@pytest.mark.parametrize(
    "bad, error, message",
    [
        ({"year": {"$gte": 2021, "$within": 1}}, ValueError, "unknown operator '\\$within'"),
        ({"$nor": []}, ValueError, "unknown operator '\\$nor' at the top"),
        ({"x": {"$contains": [1, 2]}}, TypeError, "use \\$in, \\$contains, or \\$eq for a whole list"),
        ({"x": [1, {2: 3}]}, TypeError, "keys are strings"),
        ({"x": {"$gt": 1, "a": 1}}, ValueError, "mixes operators and object keys"),
        ({"x": 2**64}, ValueError, "outside the 64-bit integers"),
        ({"x": float("nan")}, ValueError, "not a JSON number"),
        ({"x": {"$gt": True}}, ValueError, "compares numbers or strings"),
        ({"x": {"$in": "abc"}}, ValueError, "takes a list"),
        ({"x": {"$exists": 1}}, ValueError, "takes True or False"),
        ({"x": {"$like": 1}}, ValueError, "takes a string"),
        ({"x": {"$size": -1}}, ValueError, "int >= 0"),
        ({"x": {"$between": [1]}}, ValueError, "takes \\[low, high\\]"),
        ({"$and": {"x": 1}}, ValueError, "non-empty list"),
        ({1: "a"}, TypeError, "keys are metadata keys"),
        (["x"], TypeError, "expected a dict"),
    ],
)
def test_bad_filters_raise_before_any_io(bad, error, message):
    with pytest.raises(error, match=message):
        where.parse(bad)


def _stored(make_index, store):
    lsh = make_index(store=store)
    lsh.ingest(vectors=clustered(len(DOCS), dim=8), ids=np.arange(len(DOCS)), metadata=DOCS)
    return lsh


def test_every_store_finds_what_python_matches(make_index, store):
    lsh = _stored(make_index, store)
    for f in FILTERS:
        expected = [i for i, d in enumerate(DOCS) if where.matches(where.parse(f), d)]
        assert lsh.find(f).tolist() == expected, f


def test_the_redis_store_finds_what_python_matches(make_index, redis_client, name):
    lsh = _stored(make_index, RedisStore(redis_client, name=name))
    for f in FILTERS:
        expected = [i for i, d in enumerate(DOCS) if where.matches(where.parse(f), d)]
        assert lsh.find(f).tolist() == expected, f


async def test_async_find_and_filtered_queries_agree(make_index, store):
    lsh = _stored(make_index, store)
    probe = np.ones(8, np.float32)
    for f in FILTERS:
        expected = [i for i, d in enumerate(DOCS) if where.matches(where.parse(f), d)]
        assert (await lsh.afind(f)).tolist() == expected, f
        hits = lsh.query(probe, top_k=len(DOCS), filter=f)
        assert sorted(h.id for h in hits) == expected, f
