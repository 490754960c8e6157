// Package load measures how busy the system is, from the per-minute request
// counters every function writes, plus the operator's temporary load
// overrides. The traffic manager sheds by it; the system monitor reports it.
package load

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/store"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
)

// Limits of the summed overrides (as the original clamped them).
const (
	MaxOverrideLoad        = 1.0
	MaxOverrideConnections = 50000
)

// overridePartition holds every override; writes are rare (an operator's POST),
// so one partition is plenty and the read is a single Query.
const overridePartition = "override"

// Override is one operator-added load figure.
type Override struct {
	Connections int
	Load        float64
	ExpiresAt   time.Time
}

// OverrideTotals is the sum of the unexpired overrides, clamped.
type OverrideTotals struct {
	Load        float64 // [0, 1]
	Connections int     // [0, 50000]
	Count       int     // unexpired overrides
}

// OverridesAPI is the part of the DynamoDB client the overrides use.
type OverridesAPI interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Overrides stores load overrides in LOAD_OVERRIDES_TABLE. Each POST adds an
// item (pk "override", sk = expiry in epoch ms, zero padded, then a random id),
// so overrides add up without a read-modify-write, and the read asks only for
// sort keys after now: an expired item is never counted, whatever TTL has or
// has not deleted yet.
type Overrides struct {
	db    OverridesAPI
	table string
	ttl   time.Duration
	clock clock.Clock
}

// NewOverrides returns the override store; ttl is LOAD_OVERRIDE_TTL.
func NewOverrides(db OverridesAPI, table string, ttl time.Duration, c clock.Clock) *Overrides {
	return &Overrides{db: db, table: table, ttl: ttl, clock: c}
}

// TTL returns how long an override lives.
func (o *Overrides) TTL() time.Duration { return o.ttl }

func sortKey(expires time.Time, id string) string {
	return fmt.Sprintf("%015d#%s", expires.UnixMilli(), id)
}

// Add stores an override of connections and load that expires after the TTL.
func (o *Overrides) Add(ctx context.Context, connections int, load float64) (Override, error) {
	if connections < 0 || math.IsNaN(load) || load < 0 {
		return Override{}, fmt.Errorf("override out of range: connections %d, load %v", connections, load)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	ov := Override{Connections: connections, Load: load, ExpiresAt: o.clock.Now().Add(o.ttl)}
	_, err := o.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(o.table),
		Item: map[string]types.AttributeValue{
			"pk":          &types.AttributeValueMemberS{Value: overridePartition},
			"sk":          &types.AttributeValueMemberS{Value: sortKey(ov.ExpiresAt, hex.EncodeToString(b[:]))},
			"connections": &types.AttributeValueMemberN{Value: strconv.Itoa(connections)},
			"load":        &types.AttributeValueMemberN{Value: strconv.FormatFloat(load, 'g', -1, 64)},
			"expiresAt":   &types.AttributeValueMemberN{Value: strconv.FormatInt(ov.ExpiresAt.UnixMilli(), 10)},
			// TTL in whole seconds, rounded up so the sweep never beats expiresAt.
			"ttl": &types.AttributeValueMemberN{Value: strconv.FormatInt((ov.ExpiresAt.UnixMilli()+999)/1000, 10)},
		},
	})
	if err != nil {
		return Override{}, fmt.Errorf("put load override: %w", err)
	}
	return ov, nil
}

// Current sums the overrides that have not expired at the clock's now.
func (o *Overrides) Current(ctx context.Context) (OverrideTotals, error) {
	now := o.clock.Now()
	// Sort keys start with the expiry: "> now" in key order is "not expired".
	keyCond := expression.Key("pk").Equal(expression.Value(overridePartition)).
		And(expression.Key("sk").GreaterThan(expression.Value(fmt.Sprintf("%015d#~", now.UnixMilli()))))
	expr, err := expression.NewBuilder().WithKeyCondition(keyCond).Build()
	if err != nil {
		return OverrideTotals{}, fmt.Errorf("build override query: %w", err)
	}
	p := dynamodb.NewQueryPaginator(o.db, &dynamodb.QueryInput{
		TableName:                 aws.String(o.table),
		KeyConditionExpression:    expr.KeyCondition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		ConsistentRead:            aws.Bool(true),
	})
	var load float64
	var conns int64
	var count int
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return OverrideTotals{}, fmt.Errorf("query load overrides: %w", err)
		}
		for _, item := range page.Items {
			exp := store.Int(item["expiresAt"])
			if exp <= now.UnixMilli() { // belt and braces beside the key condition
				continue
			}
			l := store.Float(item["load"])
			c := store.Int(item["connections"])
			if l < 0 || c < 0 {
				continue
			}
			load += l
			conns += c
			count++
		}
	}
	return OverrideTotals{
		Load:        math.Min(load, MaxOverrideLoad),
		Connections: int(min(conns, MaxOverrideConnections)),
		Count:       count,
	}, nil
}
