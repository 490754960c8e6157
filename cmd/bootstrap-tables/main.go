// Command bootstrap-tables creates every DynamoDB table of template.yaml (with
// TTL) on DYNAMODB_ENDPOINT, under the names the functions would read from
// USERS_TABLE, SESSIONS_TABLE, ... (defaults zenith-users, ...). Running it
// again changes nothing. It refuses to run without DYNAMODB_ENDPOINT: on AWS
// the tables belong to the CloudFormation stack.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/samtemplate"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/tables"
)

func main() {
	if err := run(context.Background(), os.Getenv); err != nil {
		fmt.Fprintf(os.Stderr, "bootstrap-tables: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string) error {
	cfg, err := config.Load("bootstrap-tables", getenv)
	if err != nil {
		return err
	}
	if cfg.DynamoDBEndpoint == "" {
		return fmt.Errorf("DYNAMODB_ENDPOINT is not set (e.g. http://127.0.0.1:8000); on AWS the stack owns the tables")
	}
	ac, err := store.LoadAWS(ctx, cfg.Region, cfg.DynamoDBEndpoint)
	if err != nil {
		return err
	}
	tmpl, err := samtemplate.Embedded()
	if err != nil {
		return err
	}
	results, err := tables.Bootstrap(ctx, store.NewAdminDynamoDB(ac, cfg.DynamoDBEndpoint), tmpl.Tables, cfg.Tables)
	if err != nil {
		return err
	}
	for _, r := range results {
		state := "exists"
		if r.Created {
			state = "created"
		}
		fmt.Printf("%-20s %-28s %s\n", r.LogicalID, r.Name, state)
	}
	return nil
}
