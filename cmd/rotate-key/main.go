// Command rotate-key rotates the deployment key (SECURITY.md): the users
// table item meta#keys gets a new random current key, and the old one is
// kept as the previous key, which instances still accept for cursors and
// device cookies; the key before it is dropped. Rate-limit and lockout
// counters are keyed by the current key, so they start afresh. Instances
// pick the new key up within keyring.RefreshAfter (10 min), or at once when
// shown a value made under it. It never prints a key.
//
// Run it with an operator's AWS credentials (it needs dynamodb:GetItem and
// dynamodb:UpdateItem on the users table, which no function holds):
//
//	USERS_TABLE=<the stack's UsersTable> AWS_REGION=<region> go run ./cmd/rotate-key
//
// Locally, DYNAMODB_ENDPOINT points it at DynamoDB Local.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/keyring"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

func main() {
	if err := run(context.Background(), os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "rotate-key: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string, out io.Writer) error {
	cfg, err := config.Load("rotate-key", getenv)
	if err != nil {
		return err
	}
	ac, err := store.LoadAWS(ctx, cfg.Region, cfg.DynamoDBEndpoint)
	if err != nil {
		return err
	}
	db := store.NewDynamoDB(ac, cfg.DynamoDBEndpoint, cfg.DBTimeout)
	r, err := keyring.Rotate(ctx, db, cfg.Tables.Users, clock.System{}, nil)
	if err != nil {
		return err
	}
	if r.Previous == 0 {
		fmt.Fprintf(out, "%s: created the deployment key, version %d\n", cfg.Tables.Users, r.Version)
		return nil
	}
	fmt.Fprintf(out, "%s: deployment key rotated to version %d; version %d is still accepted for cursors and device cookies\n", cfg.Tables.Users, r.Version, r.Previous)
	return nil
}
