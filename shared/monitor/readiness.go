package monitor

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
)

// ReadinessCacheFor is how long an instance reuses a readiness check, success
// or failure (API.md: at most one DynamoDB call per instance per 5 s).
const ReadinessCacheFor = 5 * time.Second

// readinessKey is the item the check reads: it never exists, and reading an
// absent item proves the table answers at the least cost (0.5 read units).
var readinessKey = map[string]types.AttributeValue{
	"pk": &types.AttributeValueMemberS{Value: "health"},
	"sk": &types.AttributeValueMemberS{Value: "probe"},
}

// GetItemAPI is the part of the DynamoDB client the readiness check uses.
type GetItemAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
}

// Readiness checks that DynamoDB answers, with one eventually consistent
// GetItem of a fixed key in METRICS_TABLE, and caches the result for
// ReadinessCacheFor on the injected clock. Checks are serialised, so a burst
// of probes makes one call.
type Readiness struct {
	db    GetItemAPI
	table string
	clock clock.Clock

	check sync.Mutex // serialises checks

	mu      sync.Mutex
	at      time.Time // when the cached result was measured
	ready   bool
	checked bool
}

// NewReadiness returns the readiness check on table.
func NewReadiness(db GetItemAPI, table string, c clock.Clock) *Readiness {
	return &Readiness{db: db, table: table, clock: c}
}

// Ready reports whether the last check, at most ReadinessCacheFor old,
// succeeded, checking again when it is older. A check the caller abandoned
// (its context cancelled) is not cached.
func (r *Readiness) Ready(ctx context.Context) bool {
	r.check.Lock()
	defer r.check.Unlock()
	now := r.clock.Now()
	r.mu.Lock()
	if r.checked && !now.Before(r.at) && now.Sub(r.at) < ReadinessCacheFor {
		ready := r.ready
		r.mu.Unlock()
		return ready
	}
	r.mu.Unlock()
	_, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(r.table), Key: readinessKey})
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		return false
	}
	r.mu.Lock()
	r.at, r.ready, r.checked = now, err == nil, true
	r.mu.Unlock()
	return err == nil
}
