// Command goclient runs the end-to-end workload of issue 5 with the official Go driver
// (go.mongodb.org/mongo-driver v1) against a MongoDB URI — in the tests, a libdocauth
// example proxy — and prints one JSON document on stdout: every step, whether it
// succeeded, the server's error code when it did not, and the values the test checks.
//
//	goclient -uri mongodb://127.0.0.1:PORT/?directConnection=true -workload full \
//	         -coll e2e_go -marker MARKER-1234
//
// Steps never stop the run: a failed step is recorded and the next one runs, so the test
// sees the whole picture (for instance that the session goes on after a denial). The exit
// status is 0 when the JSON was written, 2 on bad flags or when the client cannot be made.
// tests/python/test_e2e_proxies.py runs the same steps with pymongo and asserts on both.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// Step is one operation's outcome.
type Step struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Code  int32  `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	Value any    `json:"value,omitempty"`
}

// Report is what goclient prints.
type Report struct {
	Driver string `json:"driver"`
	Steps  []Step `json:"steps"`
}

type runner struct {
	client  *mongo.Client
	report  Report
	timeout time.Duration
}

// step runs fn with its own deadline and records the outcome.
func (r *runner) step(name string, fn func(ctx context.Context) (any, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	value, err := fn(ctx)
	s := Step{Name: name, OK: err == nil, Value: value}
	if err != nil {
		s.Code = codeOf(err)
		s.Error = err.Error()
		if len(s.Error) > 2000 {
			s.Error = s.Error[:2000]
		}
	}
	r.report.Steps = append(r.report.Steps, s)
}

// codeOf digs the server's error code out of whatever error type the driver returned.
func codeOf(err error) int32 {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return ce.Code
	}
	var we mongo.WriteException
	if errors.As(err, &we) {
		if len(we.WriteErrors) > 0 {
			return int32(we.WriteErrors[0].Code)
		}
		if we.WriteConcernError != nil {
			return int32(we.WriteConcernError.Code)
		}
	}
	var be mongo.BulkWriteException
	if errors.As(err, &be) {
		if len(be.WriteErrors) > 0 {
			return int32(be.WriteErrors[0].Code)
		}
		if be.WriteConcernError != nil {
			return int32(be.WriteConcernError.Code)
		}
	}
	return 0
}

func main() {
	uri := flag.String("uri", "", "MongoDB URI (required)")
	workload := flag.String("workload", "full", "full | short | traffic (ordinary driver traffic only, see traffic.go) | load (see load.go)")
	dbName := flag.String("db", "test", "the allowed database")
	coll := flag.String("coll", "e2e_go", "collection name in -db (dropped before and after)")
	marker := flag.String("marker", "MARKER", "prefix of every document value written")
	docs := flag.Int("docs", 10000, "documents inserted by the full workload")
	bigMiB := flag.Int("big-mib", 15, "size of the big document's string, MiB")
	timeout := flag.Duration("timeout", 120*time.Second, "deadline of each step (load: of the whole run)")
	sessions := flag.Int("sessions", 1000, "load: clients, each with one connection, all connected at once")
	roundTrips := flag.Int("round-trips", 100, "load: FindOne round trips per client")
	parallel := flag.Int("parallel", 50, "load: handshakes at a time while connecting")
	flag.Parse()
	known := map[string]bool{"full": true, "short": true, "traffic": true, "load": true}
	if *uri == "" || !known[*workload] {
		flag.Usage()
		os.Exit(2)
	}
	if *workload == "load" {
		report := runLoad(*uri, *dbName, *coll, *marker, *sessions, *roundTrips, *parallel, *timeout)
		if err := json.NewEncoder(os.Stdout).Encode(report); err != nil {
			os.Exit(2)
		}
		return
	}

	client, err := mongo.Connect(context.Background(), options.Client().ApplyURI(*uri))
	if err != nil {
		fmt.Fprintf(os.Stderr, "goclient: %v\n", err)
		os.Exit(2)
	}
	r := &runner{client: client, timeout: *timeout, report: Report{Driver: "go.mongodb.org/mongo-driver v1"}}
	if *workload == "traffic" {
		trafficWorkload(r, *uri, *dbName, *coll)
		finish(r, client)
		return
	}
	db := client.Database(*dbName)
	c := db.Collection(*coll)
	big := db.Collection(*coll + "_big")

	r.step("ping", func(ctx context.Context) (any, error) {
		return nil, client.Ping(ctx, nil)
	})
	r.step("drop", func(ctx context.Context) (any, error) { return nil, c.Drop(ctx) })

	n := *docs
	if *workload == "short" {
		n = 10
	}
	r.step("insert_many", func(ctx context.Context) (any, error) {
		batch := make([]any, 0, n)
		for i := 0; i < n; i++ {
			batch = append(batch, bson.D{{Key: "_id", Value: i}, {Key: "ssn", Value: fmt.Sprintf("%s-%d", *marker, i)}, {Key: "n", Value: i}})
		}
		res, err := c.InsertMany(ctx, batch)
		if err != nil {
			return nil, err
		}
		return len(res.InsertedIDs), nil
	})
	r.step("find_one", func(ctx context.Context) (any, error) {
		var doc bson.M
		if err := c.FindOne(ctx, bson.D{{Key: "ssn", Value: fmt.Sprintf("%s-%d", *marker, 3)}}).Decode(&doc); err != nil {
			return nil, err
		}
		return doc["ssn"], nil
	})

	if *workload == "full" {
		r.step("count", func(ctx context.Context) (any, error) { return c.CountDocuments(ctx, bson.D{}) })
		r.step("find_getmore", func(ctx context.Context) (any, error) {
			cur, err := c.Find(ctx, bson.D{}, options.Find().SetBatchSize(1000).SetSort(bson.D{{Key: "_id", Value: 1}}))
			if err != nil {
				return nil, err
			}
			defer cur.Close(ctx)
			seen := 0
			for cur.Next(ctx) {
				var doc struct {
					ID  int    `bson:"_id"`
					SSN string `bson:"ssn"`
				}
				if err := cur.Decode(&doc); err != nil {
					return nil, err
				}
				if doc.ID != seen || doc.SSN != fmt.Sprintf("%s-%d", *marker, seen) {
					return nil, fmt.Errorf("document %d is %+v", seen, doc)
				}
				seen++
			}
			return seen, cur.Err()
		})
		r.step("update", func(ctx context.Context) (any, error) {
			res, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}})
			if err != nil {
				return nil, err
			}
			return res.ModifiedCount, nil
		})
		r.step("delete", func(ctx context.Context) (any, error) {
			res, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: 2}})
			if err != nil {
				return nil, err
			}
			return res.DeletedCount, nil
		})
		r.step("count_after", func(ctx context.Context) (any, error) { return c.CountDocuments(ctx, bson.D{}) })
		r.step("aggregate", func(ctx context.Context) (any, error) {
			cur, err := c.Aggregate(ctx, mongo.Pipeline{
				{{Key: "$match", Value: bson.D{{Key: "_id", Value: bson.D{{Key: "$lt", Value: 5}}}}}},
				{{Key: "$count", Value: "n"}},
			})
			if err != nil {
				return nil, err
			}
			var out []bson.M
			if err := cur.All(ctx, &out); err != nil {
				return nil, err
			}
			if len(out) != 1 {
				return nil, fmt.Errorf("aggregate returned %d documents", len(out))
			}
			return out[0]["n"], nil
		})
		blob := strings.Repeat(*marker+"-big-", (*bigMiB<<20)/(len(*marker)+5)+1)[:*bigMiB<<20]
		r.step("big_insert", func(ctx context.Context) (any, error) {
			if err := big.Drop(ctx); err != nil {
				return nil, err
			}
			_, err := big.InsertOne(ctx, bson.D{{Key: "_id", Value: "big"}, {Key: "blob", Value: blob}})
			return len(blob), err
		})
		r.step("big_find", func(ctx context.Context) (any, error) {
			var doc struct {
				Blob string `bson:"blob"`
			}
			if err := big.FindOne(ctx, bson.D{{Key: "_id", Value: "big"}}).Decode(&doc); err != nil {
				return nil, err
			}
			if doc.Blob != blob {
				return nil, fmt.Errorf("big document came back changed (%d bytes)", len(doc.Blob))
			}
			return len(doc.Blob), nil
		})
	}

	// Denied: every one must fail with code 13 and leave the session usable.
	other := client.Database("other")
	r.step("admin_list_databases", func(ctx context.Context) (any, error) {
		return client.ListDatabaseNames(ctx, bson.D{})
	})
	r.step("other_insert", func(ctx context.Context) (any, error) {
		_, err := other.Collection("stuff").InsertOne(ctx, bson.D{{Key: "ssn", Value: *marker + "-other"}})
		return nil, err
	})
	if *workload == "full" {
		r.step("admin_find", func(ctx context.Context) (any, error) {
			return nil, client.Database("admin").Collection("system.users").FindOne(ctx, bson.D{}).Err()
		})
		r.step("other_find", func(ctx context.Context) (any, error) {
			return nil, other.Collection("stuff").FindOne(ctx, bson.D{}).Err()
		})
		aggregate := func(stage bson.D) func(ctx context.Context) (any, error) {
			return func(ctx context.Context) (any, error) {
				cur, err := c.Aggregate(ctx, mongo.Pipeline{stage})
				if err != nil {
					return nil, err
				}
				defer cur.Close(ctx)
				for cur.Next(ctx) {
				}
				return nil, cur.Err()
			}
		}
		r.step("out_other", aggregate(bson.D{{Key: "$out", Value: bson.D{{Key: "db", Value: "other"}, {Key: "coll", Value: "copy"}}}}))
		r.step("merge_other", aggregate(bson.D{{Key: "$merge", Value: bson.D{{Key: "into", Value: bson.D{{Key: "db", Value: "other"}, {Key: "coll", Value: "copy"}}}}}}))
		r.step("lookup_other", aggregate(bson.D{{Key: "$lookup", Value: bson.D{
			{Key: "from", Value: bson.D{{Key: "db", Value: "other"}, {Key: "coll", Value: "secrets"}}},
			{Key: "localField", Value: "_id"}, {Key: "foreignField", Value: "_id"}, {Key: "as", Value: "joined"},
		}}}))
		r.step("rename_other", func(ctx context.Context) (any, error) {
			return nil, client.Database("admin").RunCommand(ctx, bson.D{
				{Key: "renameCollection", Value: *dbName + "." + *coll},
				{Key: "to", Value: "other.copy"},
			}).Err()
		})
		r.step("sasl_start", func(ctx context.Context) (any, error) {
			return nil, client.Database("$external").RunCommand(ctx, bson.D{
				{Key: "saslStart", Value: 1},
				{Key: "mechanism", Value: "MONGODB-AWS"},
				{Key: "payload", Value: primitive.Binary{Data: []byte{5, 0, 0, 0, 0}}},
			}).Err()
		})
	}

	r.step("after_denials", func(ctx context.Context) (any, error) {
		var doc bson.M
		if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: 3}}).Decode(&doc); err != nil {
			return nil, err
		}
		return doc["ssn"], nil
	})
	r.step("drop_end", func(ctx context.Context) (any, error) {
		if err := big.Drop(ctx); err != nil {
			return nil, err
		}
		return nil, c.Drop(ctx)
	})

	finish(r, client)
}

// finish disconnects (recording a failure as a step) and prints the report.
func finish(r *runner, client *mongo.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Disconnect(ctx); err != nil {
		r.report.Steps = append(r.report.Steps, Step{Name: "disconnect", Error: err.Error(), Code: codeOf(err)})
	}
	if err := json.NewEncoder(os.Stdout).Encode(r.report); err != nil {
		fmt.Fprintf(os.Stderr, "goclient: %v\n", err)
		os.Exit(2)
	}
}
