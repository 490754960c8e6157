package tables_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	zenith "github.com/zenithfresh/zenith-serverless"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/tables"
)

func TestParseTemplateTables(t *testing.T) {
	ts, err := tables.Parse(zenith.Template)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != len(tables.Env) {
		t.Fatalf("template has %d tables, tables.Env knows %d", len(ts), len(tables.Env))
	}
	for _, tb := range ts {
		t.Run(tb.LogicalID, func(t *testing.T) {
			if _, ok := tables.Env[tb.LogicalID]; !ok {
				t.Errorf("no env var for %s", tb.LogicalID)
			}
			if !tb.TimeToLive.Enabled || tb.TimeToLive.AttributeName != "ttl" {
				t.Errorf("TTL not enabled on attribute ttl: %+v", tb.TimeToLive)
			}
			if tb.BillingMode != "PAY_PER_REQUEST" {
				t.Errorf("billing mode %q, want on-demand", tb.BillingMode)
			}
			if !tb.PointInTimeRecovery.Enabled {
				t.Error("point-in-time recovery off")
			}
		})
	}
}

func TestBootstrapCreatesAllTablesIdempotently(t *testing.T) {
	env := dynamotest.New(t, "test", nil) // creates once already
	names := config.DefaultTables.WithPrefix("boot" + env.Tables.Users[:8])
	ctx := context.Background()
	first, err := tables.Bootstrap(ctx, env.Client, zenith.Template, names)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range first {
		if !r.Created || !r.TTLEnabled {
			t.Errorf("first run: %+v, want created with TTL enabled", r)
		}
	}
	second, err := tables.Bootstrap(ctx, env.Client, zenith.Template, names)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	for _, r := range second {
		if r.Created || r.TTLEnabled {
			t.Errorf("second run changed %+v", r)
		}
	}
	for _, r := range first {
		d, err := env.Client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(r.Name)})
		if err != nil {
			t.Fatal(err)
		}
		if d.TimeToLiveDescription.TimeToLiveStatus != types.TimeToLiveStatusEnabled {
			t.Errorf("%s TTL status %s", r.Name, d.TimeToLiveDescription.TimeToLiveStatus)
		}
	}
	desc, err := env.Client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(names.Sessions)})
	if err != nil {
		t.Fatal(err)
	}
	if len(desc.Table.GlobalSecondaryIndexes) != 1 || aws.ToString(desc.Table.GlobalSecondaryIndexes[0].IndexName) != "userId-index" {
		t.Errorf("sessions GSI missing: %+v", desc.Table.GlobalSecondaryIndexes)
	}
}
