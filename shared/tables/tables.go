// Package tables creates the DynamoDB tables of template.yaml (read by
// shared/samtemplate) with TTL on DynamoDB Local, idempotently, so tables are
// defined only once.
package tables

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/samtemplate"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// CreateInput returns the CreateTable input for t under the given name.
func CreateInput(t samtemplate.Table, name string) *dynamodb.CreateTableInput {
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
	}
	for _, a := range t.AttributeDefinitions {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{
			AttributeName: aws.String(a.Name), AttributeType: types.ScalarAttributeType(a.Type),
		})
	}
	in.KeySchema = keySchema(t.KeySchema)
	for _, g := range t.GlobalSecondaryIndexes {
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
			IndexName: aws.String(g.IndexName),
			KeySchema: keySchema(g.KeySchema),
			Projection: &types.Projection{
				ProjectionType:   types.ProjectionType(g.Projection.ProjectionType),
				NonKeyAttributes: g.Projection.NonKeyAttributes,
			},
		})
	}
	return in
}

func keySchema(ks []samtemplate.KeyElement) []types.KeySchemaElement {
	out := make([]types.KeySchemaElement, 0, len(ks))
	for _, k := range ks {
		out = append(out, types.KeySchemaElement{AttributeName: aws.String(k.Name), KeyType: types.KeyType(k.Type)})
	}
	return out
}

// API is the part of the DynamoDB client Bootstrap uses; give it the
// administrative client (store.NewAdminDynamoDB).
type API interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
	DescribeTimeToLive(ctx context.Context, in *dynamodb.DescribeTimeToLiveInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
}

// Result says what Bootstrap did to one table.
type Result struct {
	LogicalID, Name string
	Created         bool // false: it existed already
	TTLEnabled      bool // false: TTL was on already
}

// Bootstrap creates every table in ts (samtemplate.Template.Tables) under the
// names in names and enables TTL on each; running it again changes nothing.
// A call that fails transiently (the store unreachable, throttling, or the
// client's whole bound spent) is tried again, up to Attempts times.
func Bootstrap(ctx context.Context, db API, ts []samtemplate.Table, names config.Tables) ([]Result, error) {
	if len(ts) == 0 {
		return nil, errors.New("template has no AWS::DynamoDB::Table")
	}
	var out []Result
	for _, t := range ts {
		name, ok := names.Name(t.LogicalID)
		if !ok {
			return nil, fmt.Errorf("table %s of the template has no configured name", t.LogicalID)
		}
		res := Result{LogicalID: t.LogicalID, Name: name}
		err := retry(ctx, func() error {
			_, err := db.CreateTable(ctx, CreateInput(t, name))
			return err
		})
		var inUse *types.ResourceInUseException
		switch {
		case err == nil:
			res.Created = true
		case errors.As(err, &inUse): // it exists: done
		default:
			return out, fmt.Errorf("create table %s: %w", name, err)
		}
		if t.TimeToLive.Enabled && t.TimeToLive.AttributeName != "" {
			enabled, err := enableTTL(ctx, db, name, t.TimeToLive.AttributeName)
			if err != nil {
				return out, err
			}
			res.TTLEnabled = enabled
		}
		out = append(out, res)
	}
	return out, nil
}

// enableTTL turns TTL on unless it is on (or turning on) already. It decides
// by the table's TTL status, not by error text: when UpdateTimeToLive fails
// because TTL went on meanwhile (another bootstrap, or an earlier attempt
// whose answer was lost), a second look finds it on.
func enableTTL(ctx context.Context, db API, name, attribute string) (bool, error) {
	on, err := ttlOn(ctx, db, name)
	if err != nil || on {
		return false, err
	}
	err = retry(ctx, func() error {
		_, err := db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName:               aws.String(name),
			TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(attribute), Enabled: aws.Bool(true)},
		})
		return err
	})
	if err == nil {
		return true, nil
	}
	if on, derr := ttlOn(ctx, db, name); derr == nil && on {
		return false, nil
	}
	return false, fmt.Errorf("enable ttl on %s: %w", name, err)
}

func ttlOn(ctx context.Context, db API, name string) (bool, error) {
	var d *dynamodb.DescribeTimeToLiveOutput
	err := retry(ctx, func() (err error) {
		d, err = db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("describe ttl of %s: %w", name, err)
	}
	if d.TimeToLiveDescription == nil {
		return false, nil
	}
	switch d.TimeToLiveDescription.TimeToLiveStatus {
	case types.TimeToLiveStatusEnabled, types.TimeToLiveStatusEnabling:
		return true, nil
	}
	return false, nil
}

// Bootstrap's own retries, on top of the client's: they cover a call that
// spent the client's whole bound (store.AdminTimeout) on an overloaded
// emulator, or a client without retries of its own.
const (
	// Attempts is how many times Bootstrap makes one call at most.
	Attempts = 4
	// FirstBackoff is the pause after the first failure; it doubles after each.
	FirstBackoff = 250 * time.Millisecond
)

func retry(ctx context.Context, call func() error) error {
	pause := FirstBackoff
	for attempt := 1; ; attempt++ {
		err := call()
		if err == nil || attempt == Attempts || !transient(err) || ctx.Err() != nil {
			return err
		}
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			return err
		case <-timer.C:
		}
		pause *= 2
	}
}

// transient reports whether a failed administrative call may succeed if made
// again. ResourceInUse is not: for CreateTable it means the table exists.
func transient(err error) bool {
	var limit *types.LimitExceededException
	return store.IsUnavailable(err) || errors.As(err, &limit)
}
