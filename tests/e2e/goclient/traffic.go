package main

// The "traffic" workload: ordinary Go driver traffic in one database, one step per kind of
// request an application sends (CRUD, bulk writes, cursors, indexes, aggregation with
// $lookup/$unionWith inside the database, views, sessions and transactions, read/write
// concerns, Stable API). tests/adversarial/capture.py records what the driver sends while
// this runs through the C proxy; the adversarial corpus replays it as must-allow traffic.

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readconcern"
	"go.mongodb.org/mongo-driver/mongo/readpref"
	"go.mongodb.org/mongo-driver/mongo/writeconcern"
)

func drain(ctx context.Context, cur *mongo.Cursor, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	n := 0
	for cur.Next(ctx) {
		n++
	}
	return n, cur.Err()
}

func trafficWorkload(r *runner, uri string, dbName string, collName string) {
	client := r.client
	db := client.Database(dbName)
	c := db.Collection(collName)
	other := db.Collection(collName + "_b")

	r.step("ping", func(ctx context.Context) (any, error) { return nil, client.Ping(ctx, readpref.Primary()) })
	r.step("drop", func(ctx context.Context) (any, error) {
		if err := other.Drop(ctx); err != nil {
			return nil, err
		}
		return nil, c.Drop(ctx)
	})
	r.step("create_collection", func(ctx context.Context) (any, error) { return nil, db.CreateCollection(ctx, collName) })
	r.step("insert_one", func(ctx context.Context) (any, error) {
		_, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: 0}, {Key: "x", Value: 0}})
		return nil, err
	})
	r.step("insert_many", func(ctx context.Context) (any, error) {
		docs := make([]any, 0, 20)
		for i := 1; i <= 20; i++ {
			docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "x", Value: i}, {Key: "tag", Value: []string{"a", "b"}[i%2]}})
		}
		res, err := c.InsertMany(ctx, docs)
		if err != nil {
			return nil, err
		}
		return len(res.InsertedIDs), nil
	})
	r.step("insert_other", func(ctx context.Context) (any, error) {
		_, err := other.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: 1}, {Key: "y", Value: 1}}, bson.D{{Key: "_id", Value: 2}, {Key: "y", Value: 2}}})
		return nil, err
	})
	r.step("find_getmore_sorted", func(ctx context.Context) (any, error) {
		cur, err := c.Find(ctx, bson.D{{Key: "x", Value: bson.D{{Key: "$gte", Value: 0}}}},
			options.Find().SetBatchSize(4).SetSort(bson.D{{Key: "x", Value: 1}}).SetProjection(bson.D{{Key: "x", Value: 1}}).SetComment("traffic").SetMaxTime(5*time.Second))
		return drain(ctx, cur, err)
	})
	r.step("find_kill_cursor", func(ctx context.Context) (any, error) {
		cur, err := c.Find(ctx, bson.D{}, options.Find().SetBatchSize(2))
		if err != nil {
			return nil, err
		}
		cur.Next(ctx)
		return nil, cur.Close(ctx)
	})
	r.step("find_one", func(ctx context.Context) (any, error) {
		var doc bson.M
		return nil, c.FindOne(ctx, bson.D{{Key: "_id", Value: 3}}).Decode(&doc)
	})
	r.step("update_one", func(ctx context.Context) (any, error) {
		_, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "y", Value: 1}}}})
		return nil, err
	})
	r.step("update_many_upsert", func(ctx context.Context) (any, error) {
		_, err := c.UpdateMany(ctx, bson.D{{Key: "tag", Value: "a"}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}, options.Update().SetUpsert(true))
		return nil, err
	})
	r.step("replace_one", func(ctx context.Context) (any, error) {
		_, err := c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: 2}}, bson.D{{Key: "x", Value: 2}, {Key: "replaced", Value: true}})
		return nil, err
	})
	r.step("delete_one", func(ctx context.Context) (any, error) {
		_, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: 20}})
		return nil, err
	})
	r.step("bulk_write", func(ctx context.Context) (any, error) {
		_, err := c.BulkWrite(ctx, []mongo.WriteModel{
			mongo.NewInsertOneModel().SetDocument(bson.D{{Key: "_id", Value: 100}}),
			mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: 100}}).SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "b", Value: 1}}}}),
			mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: "_id", Value: 100}}),
		}, options.BulkWrite().SetOrdered(true))
		return nil, err
	})
	r.step("find_one_and_update", func(ctx context.Context) (any, error) {
		return nil, c.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: 3}}, bson.D{{Key: "$set", Value: bson.D{{Key: "f", Value: 1}}}},
			options.FindOneAndUpdate().SetReturnDocument(options.After)).Err()
	})
	r.step("find_one_and_delete", func(ctx context.Context) (any, error) {
		return nil, c.FindOneAndDelete(ctx, bson.D{{Key: "_id", Value: 19}}).Err()
	})
	r.step("count_documents", func(ctx context.Context) (any, error) { return c.CountDocuments(ctx, bson.D{}) })
	r.step("estimated_count", func(ctx context.Context) (any, error) { return c.EstimatedDocumentCount(ctx) })
	r.step("distinct", func(ctx context.Context) (any, error) {
		v, err := c.Distinct(ctx, "tag", bson.D{})
		return len(v), err
	})
	r.step("aggregate_lookup_unionwith", func(ctx context.Context) (any, error) {
		cur, err := c.Aggregate(ctx, mongo.Pipeline{
			{{Key: "$lookup", Value: bson.D{{Key: "from", Value: collName + "_b"}, {Key: "localField", Value: "_id"}, {Key: "foreignField", Value: "_id"}, {Key: "as", Value: "j"}}}},
			{{Key: "$unionWith", Value: bson.D{{Key: "coll", Value: collName + "_b"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$match", Value: bson.D{}}}}}}}},
			{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$tag"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
		}, options.Aggregate().SetBatchSize(2))
		return drain(ctx, cur, err)
	})
	r.step("create_indexes", func(ctx context.Context) (any, error) {
		return c.Indexes().CreateMany(ctx, []mongo.IndexModel{{Keys: bson.D{{Key: "x", Value: 1}}}, {Keys: bson.D{{Key: "tag", Value: 1}, {Key: "x", Value: -1}}}})
	})
	r.step("list_indexes", func(ctx context.Context) (any, error) {
		cur, err := c.Indexes().List(ctx)
		return drain(ctx, cur, err)
	})
	r.step("drop_index", func(ctx context.Context) (any, error) {
		_, err := c.Indexes().DropOne(ctx, "x_1")
		return nil, err
	})
	r.step("list_collections", func(ctx context.Context) (any, error) {
		names, err := db.ListCollectionNames(ctx, bson.D{})
		return len(names), err
	})
	r.step("create_view", func(ctx context.Context) (any, error) {
		return nil, db.CreateView(ctx, collName+"_view", collName, mongo.Pipeline{{{Key: "$match", Value: bson.D{{Key: "x", Value: bson.D{{Key: "$gt", Value: 5}}}}}}})
	})
	r.step("find_view", func(ctx context.Context) (any, error) {
		cur, err := db.Collection(collName+"_view").Find(ctx, bson.D{})
		return drain(ctx, cur, err)
	})
	r.step("read_concern_read_pref", func(ctx context.Context) (any, error) {
		coll := db.Collection(collName, options.Collection().SetReadConcern(readconcern.Majority()).SetReadPreference(readpref.PrimaryPreferred()))
		cur, err := coll.Find(ctx, bson.D{})
		return drain(ctx, cur, err)
	})
	r.step("write_concern_majority", func(ctx context.Context) (any, error) {
		coll := db.Collection(collName, options.Collection().SetWriteConcern(writeconcern.Majority()))
		_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 200}})
		return nil, err
	})
	r.step("unacknowledged_write", func(ctx context.Context) (any, error) {
		coll := db.Collection(collName, options.Collection().SetWriteConcern(writeconcern.Unacknowledged()))
		_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 201}})
		if errors.Is(err, mongo.ErrUnacknowledgedWrite) {
			err = nil
		}
		return nil, err
	})
	r.step("transaction_commit", func(ctx context.Context) (any, error) {
		sess, err := client.StartSession()
		if err != nil {
			return nil, err
		}
		defer sess.EndSession(ctx)
		_, err = sess.WithTransaction(ctx, func(sc mongo.SessionContext) (any, error) {
			if _, err := c.InsertOne(sc, bson.D{{Key: "_id", Value: 300}}); err != nil {
				return nil, err
			}
			return nil, c.FindOne(sc, bson.D{{Key: "_id", Value: 300}}).Err()
		})
		return nil, err
	})
	r.step("transaction_abort", func(ctx context.Context) (any, error) {
		sess, err := client.StartSession()
		if err != nil {
			return nil, err
		}
		defer sess.EndSession(ctx)
		if err := sess.StartTransaction(); err != nil {
			return nil, err
		}
		if err := mongo.WithSession(ctx, sess, func(sc mongo.SessionContext) error {
			_, err := c.InsertOne(sc, bson.D{{Key: "_id", Value: 301}})
			return err
		}); err != nil {
			return nil, err
		}
		return nil, sess.AbortTransaction(ctx)
	})
	r.step("stable_api", func(ctx context.Context) (any, error) {
		api, err := mongo.Connect(ctx, options.Client().ApplyURI(uri).SetServerAPIOptions(options.ServerAPI(options.ServerAPIVersion1)))
		if err != nil {
			return nil, err
		}
		defer api.Disconnect(ctx)
		return nil, api.Database(dbName).Collection(collName).FindOne(ctx, bson.D{{Key: "_id", Value: 3}}).Err()
	})
	r.step("drop_end", func(ctx context.Context) (any, error) {
		if err := db.Collection(collName + "_view").Drop(ctx); err != nil {
			return nil, err
		}
		if err := other.Drop(ctx); err != nil {
			return nil, err
		}
		return nil, c.Drop(ctx)
	})
}
