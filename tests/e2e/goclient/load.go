package main

// The load workload (issue 10 §5): -sessions clients, each with exactly one application
// connection (maxPoolSize=1) through the proxy, all connected at once, each doing
// -round-trips FindOne of its own document and checking what came back. Nothing may be
// lost: every round trip must return that client's document, none may fail.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// LoadReport is what the load workload prints.
type LoadReport struct {
	Driver     string   `json:"driver"`
	Sessions   int      `json:"sessions"`
	RoundTrips int      `json:"round_trips"`
	Connected  int      `json:"connected"`
	OK         int64    `json:"ok"`
	Failed     int64    `json:"failed"`
	Wrong      int64    `json:"wrong"`
	Errors     []string `json:"errors,omitempty"` // the first few, for the test's message
	ConnectS   float64  `json:"connect_seconds"`
	RunS       float64  `json:"run_seconds"`
}

type errorSample struct {
	mu     sync.Mutex
	errors []string
}

func (e *errorSample) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.errors) < 10 {
		e.errors = append(e.errors, fmt.Sprintf(format, args...))
	}
}

// runLoad seeds one document per session through a setup client, connects every session
// (at most `parallel` handshakes at a time, as a connection pool ramping up would), then
// releases all of them at once.
func runLoad(uri, dbName, collName, marker string, sessions, roundTrips, parallel int, timeout time.Duration) LoadReport {
	report := LoadReport{Driver: "go", Sessions: sessions, RoundTrips: roundTrips}
	var sample errorSample
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	setup, err := mongo.Connect(ctx, options.Client().ApplyURI(uri))
	if err != nil {
		sample.add("setup client: %v", err)
		report.Errors = sample.errors
		return report
	}
	defer func() { _ = setup.Disconnect(context.Background()) }()
	coll := setup.Database(dbName).Collection(collName)
	_ = coll.Drop(ctx)
	docs := make([]any, sessions)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: i}, {Key: "v", Value: fmt.Sprintf("%s-%d", marker, i)}}
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		sample.add("seeding %d documents: %v", sessions, err)
		report.Errors = sample.errors
		return report
	}
	defer func() { _ = coll.Drop(context.Background()) }()

	// One client per session; poll monitoring keeps each client's monitor to one connection.
	clients := make([]*mongo.Client, sessions)
	started := time.Now()
	var wg sync.WaitGroup
	gate := make(chan struct{}, parallel)
	var connected atomic.Int64
	for i := range clients {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			gate <- struct{}{}
			defer func() { <-gate }()
			opts := options.Client().ApplyURI(uri + "&serverMonitoringMode=poll").
				SetMaxPoolSize(1).SetMinPoolSize(0)
			c, err := mongo.Connect(ctx, opts)
			if err != nil {
				sample.add("client %d: connect: %v", i, err)
				return
			}
			// The ping makes the pool's one connection (TLS, MONGODB-AWS at the proxy).
			if err := c.Ping(ctx, nil); err != nil {
				sample.add("client %d: ping: %v", i, err)
				_ = c.Disconnect(context.Background())
				return
			}
			clients[i] = c
			connected.Add(1)
		}(i)
	}
	wg.Wait()
	report.Connected = int(connected.Load())
	report.ConnectS = time.Since(started).Seconds()
	defer func() {
		for _, c := range clients {
			if c != nil {
				_ = c.Disconnect(context.Background())
			}
		}
	}()

	var ok, failed, wrong atomic.Int64
	release := make(chan struct{})
	for i, c := range clients {
		if c == nil {
			failed.Add(int64(roundTrips))
			continue
		}
		wg.Add(1)
		go func(i int, c *mongo.Client) {
			defer wg.Done()
			mine := c.Database(dbName).Collection(collName)
			want := fmt.Sprintf("%s-%d", marker, i)
			<-release
			for n := 0; n < roundTrips; n++ {
				var got struct {
					ID int    `bson:"_id"`
					V  string `bson:"v"`
				}
				err := mine.FindOne(ctx, bson.D{{Key: "_id", Value: i}}).Decode(&got)
				switch {
				case err != nil:
					failed.Add(1)
					sample.add("client %d round trip %d: %v", i, n, err)
				case got.ID != i || got.V != want:
					wrong.Add(1)
					sample.add("client %d round trip %d: got %+v, want _id %d v %q", i, n, got, i, want)
				default:
					ok.Add(1)
				}
			}
		}(i, c)
	}
	started = time.Now()
	close(release)
	wg.Wait()
	report.RunS = time.Since(started).Seconds()
	report.OK, report.Failed, report.Wrong = ok.Load(), failed.Load(), wrong.Load()
	report.Errors = sample.errors
	return report
}
