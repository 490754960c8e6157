package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/keyring"
)

// TestRotateKey: the first run creates version 1 (no key yet), each next
// run rotates; a value sealed before a rotation still opens after it, and
// the key never appears in the output.
func TestRotateKey(t *testing.T) {
	db := dynamotest.New(t, "test", nil)
	env := db.Tables.Env()
	env["DYNAMODB_ENDPOINT"] = db.Config.DynamoDBEndpoint
	env["AWS_REGION"] = "us-east-1"
	getenv := func(k string) string { return env[k] }
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, getenv, &out); err != nil || !strings.Contains(out.String(), "created the deployment key, version 1") {
		t.Fatalf("first run: %v %q", err, out.String())
	}
	k := keyring.New(db.Client, db.Tables.Users, clock.System{}, nil)
	sealed, err := k.Seal(ctx, "cursor", []byte("page"))
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, getenv, &out); err != nil || !strings.Contains(out.String(), "rotated to version 2; version 1 is still accepted") {
		t.Fatalf("second run: %v %q", err, out.String())
	}
	fresh := keyring.New(db.Client, db.Tables.Users, clock.System{}, nil)
	if v, _ := fresh.Version(ctx); v != 2 {
		t.Fatalf("version after rotation = %d", v)
	}
	if got, err := fresh.Open(ctx, "cursor", sealed); err != nil || string(got) != "page" {
		t.Fatalf("a cursor of the previous key: %q %v", got, err)
	}
}
