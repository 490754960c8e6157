package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	zenith "github.com/zenithfresh/zenith-serverless"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/tables"
)

func TestBootstrapTablesIsIdempotent(t *testing.T) {
	db := dynamotest.New(t, "test", nil)
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	names := config.DefaultTables.WithPrefix("bt" + hex.EncodeToString(b) + "-")
	env := map[string]string{"DYNAMODB_ENDPOINT": db.Config.DynamoDBEndpoint, "AWS_REGION": "us-east-1"}
	for id, variable := range tables.Env {
		env[variable], _ = tables.Name(names, id)
	}
	for i := 1; i <= 2; i++ {
		if err := run(context.Background(), func(k string) string { return env[k] }); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	// The command created every table under the configured names, TTL on.
	again, err := tables.Bootstrap(context.Background(), db.Client, zenith.Template, names)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(tables.Env) {
		t.Fatalf("%d tables, want %d", len(again), len(tables.Env))
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
