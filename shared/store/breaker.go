package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"
)

// BreakerCooldown is how long calls fail fast after the store timed out or
// was unreachable.
const BreakerCooldown = time.Second

// Breaker fails DynamoDB calls fast for a short cooldown after one timed out
// (DB_TIMEOUT) or could not reach the store, so an outage costs a request at
// most about one DB_TIMEOUT instead of one for every call it would make
// (session, limiter, handler, recorder). Throttling and the caller's own
// deadline or cancellation never trip it.
type Breaker struct {
	cooldown  time.Duration
	now       func() time.Time
	openUntil atomic.Int64 // unix nanoseconds
	trips     atomic.Int64
}

// NewBreaker returns a breaker with the given cooldown and clock.
func NewBreaker(cooldown time.Duration, now func() time.Time) *Breaker {
	return &Breaker{cooldown: cooldown, now: now}
}

// Trips returns how many times the breaker opened.
func (b *Breaker) Trips() int64 { return b.trips.Load() }

// Option installs the breaker on a client, outside the DB_TIMEOUT bound.
func (b *Breaker) Option() func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(middleware.InitializeMiddlewareFunc("StoreBreaker", b.handle), middleware.Before)
		})
	}
}

func (b *Breaker) handle(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	if b.now().UnixNano() < b.openUntil.Load() {
		return middleware.InitializeOutput{}, middleware.Metadata{},
			fmt.Errorf("%s: %w (failing fast after a recent timeout)", middleware.GetOperationName(ctx), ErrUnavailable)
	}
	out, md, err := next.HandleInitialize(ctx, in)
	if err != nil && ctx.Err() == nil && tripsBreaker(err) && !untripping(ctx) {
		b.openUntil.Store(b.now().Add(b.cooldown).UnixNano())
		b.trips.Add(1)
	}
	return out, md, err
}

// tripsBreaker: the operation's own DB_TIMEOUT fired, or the network failed.
func tripsBreaker(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

type noTripKey struct{}

// WithoutTrip returns a context whose calls never open the breaker (they
// still fail fast while it is open): the recorder's counter writes, whose
// failure must not make the requests of the next second answer 503.
func WithoutTrip(ctx context.Context) context.Context {
	return context.WithValue(ctx, noTripKey{}, true)
}

func untripping(ctx context.Context) bool {
	v, _ := ctx.Value(noTripKey{}).(bool)
	return v
}
