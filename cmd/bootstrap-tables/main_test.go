package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/samtemplate"
	"github.com/zenithfresh/zenith-serverless/shared/tables"
)

func TestBootstrapTablesIsIdempotent(t *testing.T) {
	db := dynamotest.New(t, "test", nil)
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	names := config.DefaultTables.WithPrefix("bt" + hex.EncodeToString(b) + "-")
	env := names.Env()
	env["DYNAMODB_ENDPOINT"] = db.Config.DynamoDBEndpoint
	env["AWS_REGION"] = "us-east-1"
	for i := 1; i <= 2; i++ {
		if err := run(context.Background(), func(k string) string { return env[k] }); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	// The command created every table under the configured names, TTL on.
	tmpl, err := samtemplate.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	again, err := tables.Bootstrap(context.Background(), db.NewAdminClient(t), tmpl.Tables, names)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(config.TableSpecs) {
		t.Fatalf("%d tables, want %d", len(again), len(config.TableSpecs))
	}
	for _, r := range again {
		if r.Created || r.TTLEnabled {
			t.Errorf("%s was not created (with TTL) by the command: %+v", r.Name, r)
		}
	}
}

func TestBootstrapTablesRefusesWithoutEndpoint(t *testing.T) {
	err := run(context.Background(), func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "DYNAMODB_ENDPOINT") {
		t.Errorf("err = %v, want one naming DYNAMODB_ENDPOINT", err)
	}
}
