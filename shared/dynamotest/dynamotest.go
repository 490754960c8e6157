// Package dynamotest gives tests a real DynamoDB (DynamoDB Local through the
// real SDK client) with their own freshly created tables. One DynamoDB Local
// serves a whole run: `make test` starts it and passes DYNAMODB_ENDPOINT; a
// package run alone starts its own. A missing Java or package fails the test
// loudly, never skips it.
package dynamotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/localdb"
	"github.com/zenithfresh/zenith-serverless/shared/samtemplate"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/tables"
)

var (
	once     sync.Once
	endpoint string
	startErr error

	// templateTables parses template.yaml once per test binary; Bootstrap only reads them.
	templateTables = sync.OnceValues(func() ([]samtemplate.Table, error) {
		t, err := samtemplate.Embedded()
		if err != nil {
			return nil, err
		}
		return t.Tables, nil
	})
)

// Endpoint returns the DynamoDB Local endpoint of this run, starting one if needed.
func Endpoint(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		if e := os.Getenv("DYNAMODB_ENDPOINT"); e != "" {
			endpoint = e
			return
		}
		root, err := localdb.FindRoot()
		if err != nil {
			startErr = err
			return
		}
		srv, err := localdb.Start(context.Background(), root)
		if err != nil {
			startErr = err
			return
		}
		endpoint = srv.Endpoint // lives until the test binary exits (Pdeathsig)
	})
	if startErr != nil {
		t.Fatalf("DynamoDB Local is required and could not be started: %v", startErr)
	}
	return endpoint
}

// Env is a test's own set of tables.
type Env struct {
	Config config.Config // loaded from the test's overrides, pointing at this run's DynamoDB Local
	Client *dynamodb.Client
	Tables config.Tables
}

// New creates every table of template.yaml under a fresh prefix and returns a
// config (defaults plus overrides) and client pointing at them.
func New(t testing.TB, function string, overrides map[string]string, opts ...func(*dynamodb.Options)) *Env {
	t.Helper()
	ep := Endpoint(t)
	prefix := "t" + randomHex(6) + "-"
	names := config.DefaultTables.WithPrefix(prefix)
	env := names.Env()
	env["DYNAMODB_ENDPOINT"] = ep
	env["AWS_REGION"] = "us-east-1"
	for k, v := range overrides {
		env[k] = v
	}
	cfg, err := config.Load(function, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("test config: %v", err)
	}
	ctx := context.Background()
	ac, err := store.LoadAWS(ctx, cfg.Region, cfg.DynamoDBEndpoint)
	if err != nil {
		t.Fatalf("aws config: %v", err)
	}
	ts, err := templateTables()
	if err != nil {
		t.Fatalf("read template.yaml: %v", err)
	}
	// Created through the administrative client: a busy DynamoDB Local can
	// take longer than DB_TIMEOUT to create a table.
	if _, err := tables.Bootstrap(ctx, store.NewAdminDynamoDB(ac, cfg.DynamoDBEndpoint), ts, names); err != nil {
		t.Fatalf("create test tables: %v", err)
	}
	client := store.NewDynamoDB(ac, cfg.DynamoDBEndpoint, cfg.DBTimeout, opts...)
	return &Env{Config: cfg, Client: client, Tables: names}
}

// NewClient returns another client on the same endpoint, e.g. with a call counter
// or as a second "instance".
func (e *Env) NewClient(t testing.TB, opts ...func(*dynamodb.Options)) *dynamodb.Client {
	t.Helper()
	ac, err := store.LoadAWS(context.Background(), e.Config.Region, e.Config.DynamoDBEndpoint)
	if err != nil {
		t.Fatalf("aws config: %v", err)
	}
	return store.NewDynamoDB(ac, e.Config.DynamoDBEndpoint, e.Config.DBTimeout, opts...)
}

// NewAdminClient returns an administrative client (store.NewAdminDynamoDB)
// on the same endpoint, for creating or describing tables.
func (e *Env) NewAdminClient(t testing.TB, opts ...func(*dynamodb.Options)) *dynamodb.Client {
	t.Helper()
	ac, err := store.LoadAWS(context.Background(), e.Config.Region, e.Config.DynamoDBEndpoint)
	if err != nil {
		t.Fatalf("aws config: %v", err)
	}
	return store.NewAdminDynamoDB(ac, e.Config.DynamoDBEndpoint, opts...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Seed writes reqs to table with writers concurrent store.BatchWrite calls
// of 25 items each, failing t on the first error: the one way benchmarks
// and tests load dense data.
func Seed(t testing.TB, db store.BatchWriteAPI, table string, reqs []types.WriteRequest, writers int) {
	t.Helper()
	chunks := make(chan []types.WriteRequest)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for chunk := range chunks {
				if err := store.BatchWrite(context.Background(), db, table, chunk); err != nil {
					select { // keep draining so the producer never blocks
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for start := 0; start < len(reqs); start += 25 {
		chunks <- reqs[start:min(start+25, len(reqs))]
	}
	close(chunks)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("seed %s: %v", table, err)
	}
}
