package tables_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/samtemplate"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/tables"
)

func templateTables(t *testing.T) []samtemplate.Table {
	t.Helper()
	tmpl, err := samtemplate.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	return tmpl.Tables
}

func TestBootstrapCreatesAllTablesIdempotently(t *testing.T) {
	env := dynamotest.New(t, "test", nil) // creates once already
	names := config.DefaultTables.WithPrefix("boot" + env.Tables.Users[:8])
	ctx := context.Background()
	admin := env.NewAdminClient(t)
	first, err := tables.Bootstrap(ctx, admin, templateTables(t), names)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != len(config.TableSpecs) {
		t.Errorf("%d tables bootstrapped, want %d", len(first), len(config.TableSpecs))
	}
	for _, r := range first {
		if !r.Created || !r.TTLEnabled {
			t.Errorf("first run: %+v, want created with TTL enabled", r)
		}
	}
	second, err := tables.Bootstrap(ctx, admin, templateTables(t), names)
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

// before runs hook ahead of every call of operation op the client makes; a
// non-nil error from hook fails that call before it is sent.
func before(op string, hook func(ctx context.Context, n int) error) func(*dynamodb.Options) {
	var n atomic.Int32
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(middleware.InitializeMiddlewareFunc("Before"+op, func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if middleware.GetOperationName(ctx) == op {
					if err := hook(ctx, int(n.Add(1))); err != nil {
						return middleware.InitializeOutput{}, middleware.Metadata{}, err
					}
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
		})
	}
}

func TestBootstrapRetriesTransientFailures(t *testing.T) {
	env := dynamotest.New(t, "test", nil)
	names := config.DefaultTables.WithPrefix("retry" + env.Tables.Users[:8])
	// The first call of each kind runs out of its bound, as on an overloaded emulator.
	spent := fmt.Errorf("operation bound spent: %w", context.DeadlineExceeded)
	var creates, updates int32
	db := env.NewAdminClient(t,
		before("CreateTable", func(_ context.Context, n int) error {
			atomic.StoreInt32(&creates, int32(n))
			if n == 1 {
				return spent
			}
			return nil
		}),
		before("UpdateTimeToLive", func(_ context.Context, n int) error {
			atomic.StoreInt32(&updates, int32(n))
			if n == 1 {
				return spent
			}
			return nil
		}))
	res, err := tables.Bootstrap(context.Background(), db, templateTables(t), names)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.Created || !r.TTLEnabled {
			t.Errorf("%+v, want created with TTL enabled despite the failed first calls", r)
		}
	}
	if want := int32(len(config.TableSpecs) + 1); creates != want || updates != want {
		t.Errorf("%d CreateTable and %d UpdateTimeToLive calls, want %d each (one retry)", creates, updates, want)
	}
}

func TestBootstrapGivesUpOnPermanentAndPersistentFailures(t *testing.T) {
	env := dynamotest.New(t, "test", nil)
	cases := []struct {
		name  string
		err   error
		calls int
	}{
		{"permanent", errors.New("bad request"), 1},
		{"persistent", fmt.Errorf("down: %w", store.ErrUnavailable), tables.Attempts},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var calls atomic.Int32
			db := env.NewAdminClient(t, before("CreateTable", func(context.Context, int) error {
				calls.Add(1)
				return c.err
			}))
			names := config.DefaultTables.WithPrefix(c.name + env.Tables.Users[:8])
			_, err := tables.Bootstrap(context.Background(), db, templateTables(t), names)
			if !errors.Is(err, c.err) {
				t.Errorf("err = %v, want %v", err, c.err)
			}
			if int(calls.Load()) != c.calls {
				t.Errorf("%d CreateTable calls, want %d", calls.Load(), c.calls)
			}
		})
	}
}

// TTL switched on by someone else between Bootstrap's look and its update
// (a second bootstrap, or an earlier attempt whose answer was lost) is done,
// not an error: UpdateTimeToLive then fails, and the status says why.
func TestBootstrapTTLEnabledMeanwhile(t *testing.T) {
	env := dynamotest.New(t, "test", nil)
	names := config.DefaultTables.WithPrefix("race" + env.Tables.Users[:8])
	other := env.NewAdminClient(t)
	db := env.NewAdminClient(t, before("UpdateTimeToLive", func(ctx context.Context, _ int) error {
		in := &dynamodb.UpdateTimeToLiveInput{TableName: aws.String(names.Users),
			TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String("ttl"), Enabled: aws.Bool(true)}}
		_, _ = other.UpdateTimeToLive(ctx, in) // wins the race on UsersTable (a no-op failure for the others)
		return nil
	}))
	ts := []samtemplate.Table{}
	for _, tb := range templateTables(t) {
		if tb.LogicalID == "UsersTable" {
			ts = append(ts, tb)
		}
	}
	res, err := tables.Bootstrap(context.Background(), db, ts, names)
	if err != nil {
		t.Fatalf("TTL enabled meanwhile: %v", err)
	}
	if len(res) != 1 || !res[0].Created || res[0].TTLEnabled {
		t.Errorf("%+v, want created, TTL enabled by the other", res)
	}
}

func TestBootstrapRefusesAnEmptyTemplateAndUnknownTables(t *testing.T) {
	env := dynamotest.New(t, "test", nil)
	if _, err := tables.Bootstrap(context.Background(), env.NewAdminClient(t), nil, env.Tables); err == nil {
		t.Error("no tables: no error")
	}
	_, err := tables.Bootstrap(context.Background(), env.NewAdminClient(t), []samtemplate.Table{{LogicalID: "StrangeTable"}}, env.Tables)
	if err == nil {
		t.Error("a table without a configured name: no error")
	}
}
