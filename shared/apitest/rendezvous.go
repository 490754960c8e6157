package apitest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"
)

// Rendezvous proves that two DynamoDB calls of one request run concurrently:
// once armed, the first call matching A and the first matching B each wait
// (up to 10 s) until the other has started. Had the request made them one
// after the other, the first would wait in vain: Missed counts that. Later
// calls pass untouched until Arm is called again.
type Rendezvous struct {
	A, B func(in any) bool // which operation inputs are the two sides

	armed  atomic.Bool
	mu     sync.Mutex
	a, b   chan struct{}
	aSeen  bool
	bSeen  bool
	missed atomic.Int64
}

// Arm prepares the rendezvous for the next request.
func (z *Rendezvous) Arm() {
	z.mu.Lock()
	z.a, z.b, z.aSeen, z.bSeen = make(chan struct{}), make(chan struct{}), false, false
	z.mu.Unlock()
	z.armed.Store(true)
}

// Disarm lets every call pass.
func (z *Rendezvous) Disarm() { z.armed.Store(false) }

// Missed is how many times one side waited for the other in vain.
func (z *Rendezvous) Missed() int64 { return z.missed.Load() }

// Option installs the rendezvous on a client.
func (z *Rendezvous) Option() func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(middleware.InitializeMiddlewareFunc("Rendezvous", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if mine, other := z.sides(in.Parameters); mine != nil {
					close(mine)
					select {
					case <-other:
					case <-time.After(10 * time.Second):
						z.missed.Add(1)
					}
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
		})
	}
}

// sides returns the channels of the first call of either side, or nils.
func (z *Rendezvous) sides(in any) (mine, other chan struct{}) {
	if !z.armed.Load() {
		return nil, nil
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	switch {
	case z.A(in) && !z.aSeen:
		z.aSeen = true
		return z.a, z.b
	case z.B(in) && !z.bSeen:
		z.bSeen = true
		return z.b, z.a
	}
	return nil, nil
}
