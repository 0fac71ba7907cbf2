"""Ordinary pymongo traffic in one database: what an application sends (CRUD, bulk writes,
cursors with getMore and killCursors, indexes, aggregation with $lookup/$unionWith/
$graphLookup/$facet and $out/$merge inside the database, views, renames inside the database
(renameCollection runs on `admin`), explain, sessions and transactions (commitTransaction and
abortTransaction run on `admin`), read/write concerns, unacknowledged writes (moreToCome),
Stable API). The pymongo twin of the Go client's `-workload traffic`
(tests/e2e/goclient/traffic.go); the corpus runs both through the proxy as must-allow traffic.
"""

from __future__ import annotations

from typing import Any, Callable

import pymongo
from pymongo import DeleteOne, InsertOne, ReplaceOne, UpdateOne
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.server_api import ServerApi
from pymongo.write_concern import WriteConcern


def run(uri: str, db_name: str, coll_name: str) -> dict[str, dict[str, Any]]:
    """Runs every step; returns {step: {"ok": bool, "error": str?}}."""
    steps: dict[str, dict[str, Any]] = {}

    def step(name: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
            steps[name] = {"ok": True}
        except (PyMongoError, AssertionError) as e:
            steps[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:1000], "code": getattr(e, "code", None)}

    client: pymongo.MongoClient = pymongo.MongoClient(uri, appname="adversarial-traffic")
    try:
        db = client[db_name]
        c = db[coll_name]
        b = db[coll_name + "_b"]
        step("ping", lambda: client.admin.command("ping"))
        step("drop", lambda: (c.drop(), b.drop(), db[coll_name + "_renamed"].drop(), db[coll_name + "_out"].drop(), db[coll_name + "_view"].drop()))
        step("create_collection", lambda: db.create_collection(coll_name))
        step("insert_one", lambda: c.insert_one({"_id": 0, "x": 0}))
        step("insert_many", lambda: c.insert_many([{"_id": i, "x": i, "tag": "ab"[i % 2], "parent": i // 2} for i in range(1, 31)]))
        step("insert_other", lambda: b.insert_many([{"_id": 1, "y": 1}, {"_id": 2, "y": 2}]))

        def find_getmore() -> None:
            got = list(c.find({"x": {"$gte": 0}}, {"x": 1}, batch_size=4, sort=[("x", 1)], comment="traffic", max_time_ms=5000))
            assert len(got) == 31, len(got)

        step("find_getmore_sorted", find_getmore)

        def find_kill_cursor() -> None:
            cur = c.find({}, batch_size=2)
            next(cur)
            cur.close()

        step("find_kill_cursor", find_kill_cursor)
        step("find_one", lambda: c.find_one({"_id": 3}))
        step("update_one", lambda: c.update_one({"_id": 1}, {"$set": {"y": 1}}))
        step("update_many_upsert", lambda: c.update_many({"tag": "a"}, {"$inc": {"n": 1}}, upsert=True))
        step("update_pipeline", lambda: c.update_one({"_id": 4}, [{"$set": {"z": {"$add": ["$x", 1]}}}]))
        step("replace_one", lambda: c.replace_one({"_id": 2}, {"x": 2, "replaced": True}))
        step("delete_one", lambda: c.delete_one({"_id": 30}))
        step("delete_many", lambda: c.delete_many({"_id": {"$gte": 28}}))
        step(
            "bulk_write",
            lambda: c.bulk_write([InsertOne({"_id": 100}), UpdateOne({"_id": 100}, {"$set": {"b": 1}}), ReplaceOne({"_id": 100}, {"r": 1}), DeleteOne({"_id": 100})]),
        )
        step("find_one_and_update", lambda: c.find_one_and_update({"_id": 3}, {"$set": {"f": 1}}, return_document=pymongo.ReturnDocument.AFTER))
        step("find_one_and_replace", lambda: c.find_one_and_replace({"_id": 5}, {"x": 5, "fr": 1}))
        step("find_one_and_delete", lambda: c.find_one_and_delete({"_id": 27}))
        step("count_documents", lambda: c.count_documents({}))
        step("estimated_count", lambda: c.estimated_document_count())
        step("distinct", lambda: c.distinct("tag"))
        step(
            "aggregate_lookup_unionwith",
            lambda: list(
                c.aggregate(
                    [
                        {"$lookup": {"from": coll_name + "_b", "localField": "_id", "foreignField": "_id", "as": "j"}},
                        {"$unionWith": {"coll": coll_name + "_b", "pipeline": [{"$match": {}}]}},
                        {"$group": {"_id": "$tag", "n": {"$sum": 1}}},
                    ],
                    batchSize=2,
                )
            ),
        )
        step(
            "aggregate_lookup_pipeline",
            lambda: list(c.aggregate([{"$lookup": {"from": coll_name + "_b", "let": {"i": "$_id"}, "pipeline": [{"$match": {"$expr": {"$eq": ["$_id", "$$i"]}}}], "as": "j"}}])),
        )
        step(
            "aggregate_graphlookup",
            lambda: list(c.aggregate([{"$graphLookup": {"from": coll_name, "startWith": "$parent", "connectFromField": "parent", "connectToField": "_id", "as": "up", "maxDepth": 2}}])),
        )
        step("aggregate_facet", lambda: list(c.aggregate([{"$facet": {"n": [{"$count": "n"}], "tags": [{"$group": {"_id": "$tag"}}]}}])))
        step("aggregate_out", lambda: list(c.aggregate([{"$match": {"x": {"$lt": 5}}}, {"$out": coll_name + "_out"}])))
        step("aggregate_out_db_same", lambda: list(c.aggregate([{"$match": {"x": {"$lt": 5}}}, {"$out": {"db": db_name, "coll": coll_name + "_out"}}])))
        step("aggregate_merge_same_db", lambda: list(c.aggregate([{"$match": {"x": {"$lt": 5}}}, {"$merge": {"into": {"db": db_name, "coll": coll_name + "_out"}}}])))
        step("create_indexes", lambda: c.create_indexes([pymongo.IndexModel([("x", 1)]), pymongo.IndexModel([("tag", 1), ("x", -1)], name="tag_x")]))
        step("list_indexes", lambda: list(c.list_indexes()))
        step("index_information", lambda: c.index_information())
        step("drop_index", lambda: c.drop_index("x_1"))
        step("list_collections", lambda: db.list_collection_names())
        step("create_view", lambda: db.create_collection(coll_name + "_view", viewOn=coll_name, pipeline=[{"$match": {"x": {"$gt": 5}}}]))
        step("find_view", lambda: list(db[coll_name + "_view"].find({})))
        step("db_stats", lambda: db.command("dbStats"))
        step("explain_find", lambda: c.find({"x": 1}).explain())
        step("rename_within_db", lambda: db[coll_name + "_out"].rename(coll_name + "_renamed"))
        step(
            "read_concern_read_pref",
            lambda: list(c.with_options(read_concern=ReadConcern("majority"), read_preference=pymongo.ReadPreference.PRIMARY_PREFERRED).find({})),
        )
        step("write_concern_majority", lambda: c.with_options(write_concern=WriteConcern("majority")).insert_one({"_id": 200}))
        step("unacknowledged_write", lambda: c.with_options(write_concern=WriteConcern(w=0)).insert_one({"_id": 201}))
        step("unacknowledged_update", lambda: c.with_options(write_concern=WriteConcern(w=0)).update_one({"_id": 201}, {"$set": {"u": 1}}))

        def transaction_commit() -> None:
            with client.start_session() as s:
                s.with_transaction(lambda s: (c.insert_one({"_id": 300}, session=s), c.find_one({"_id": 300}, session=s)))

        def transaction_abort() -> None:
            with client.start_session() as s:
                s.start_transaction()
                c.insert_one({"_id": 301}, session=s)
                s.abort_transaction()

        step("transaction_commit", transaction_commit)
        step("transaction_abort", transaction_abort)

        def causal_session() -> None:
            with client.start_session(causal_consistency=True) as s:
                c.insert_one({"_id": 302}, session=s)
                assert c.find_one({"_id": 302}, session=s) is not None

        step("causal_session", causal_session)

        def stable_api() -> None:
            api: pymongo.MongoClient = pymongo.MongoClient(uri, server_api=ServerApi("1"))
            try:
                api[db_name][coll_name].find_one({"_id": 3})
            finally:
                api.close()

        step("stable_api", stable_api)

        def compression_requested() -> None:
            # The driver offers zlib (the one pymongo has without extras); the proxy negotiates it away.
            z: pymongo.MongoClient = pymongo.MongoClient(uri, compressors="zlib")
            try:
                assert z[db_name][coll_name].count_documents({}) > 0
            finally:
                z.close()

        step("compression_requested", compression_requested)
        step("drop_end", lambda: (db[coll_name + "_view"].drop(), db[coll_name + "_renamed"].drop(), b.drop(), c.drop()))
    finally:
        client.close()  # sends endSessions to admin
    return steps
