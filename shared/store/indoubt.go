package store

import (
	"context"
	"errors"
	"net"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// InDoubtError is a single-item write (PutItem, UpdateItem, DeleteItem)
// whose outcome is unknown: it was sent, and no answer says DynamoDB refused
// it (a connection cut after sending, a timeout, a 5xx). The SDK does not
// retry it: a retried ADD would count twice, and a retried conditional write
// would fail its own condition and report the opposite of what happened.
// Callers treat it as unavailable (IsUnavailable) and, where they keep
// counts, as possibly applied. A TransactWriteItems is retried (its
// ClientRequestToken makes every retry within ten minutes a no-op), but when
// any of its attempts may have been applied its final error is an
// InDoubtError too, whatever the last attempt's answer (a throttle after a
// cut says nothing about the cut attempt).
type InDoubtError struct{ Err error }

func (e *InDoubtError) Error() string { return e.Err.Error() + " (outcome unknown: not retried)" }

func (e *InDoubtError) Unwrap() error { return e.Err }

// RetryableError tells the SDK's retryer (retry.RetryableError, checked
// before the connection and status rules) never to retry.
func (e *InDoubtError) RetryableError() bool { return false }

// IsInDoubt reports whether err is a write whose outcome is unknown.
func IsInDoubt(err error) bool {
	var d *InDoubtError
	return errors.As(err, &d)
}

// MaybeApplied reports whether a failed write may have been applied all the
// same: false only when the failure proves DynamoDB never applied it (the
// connection was never made, the breaker failed it fast, DynamoDB answered
// with a 4xx such as a failed condition or a throttle). A transaction whose
// ClientRequestToken is still being applied (TransactionInProgressException,
// a 4xx) may well land.
func MaybeApplied(err error) bool {
	var busy *types.TransactionInProgressException
	if err == nil || IsInDoubt(err) || errors.As(err, &busy) {
		return true
	}
	if errors.Is(err, ErrUnavailable) {
		return false // the breaker, or items DynamoDB returned unprocessed
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return false
	}
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) {
		code := resp.HTTPStatusCode()
		return code < 400 || code >= 500
	}
	var api smithy.APIError
	return !errors.As(err, &api) || api.ErrorFault() == smithy.FaultServer
}

// doubtKey holds, for one write operation, whether any attempt of it may
// have been applied.
type doubtKey struct{}

// atMostOnce is the per-attempt middleware (inside the SDK's retry loop):
// an attempt of a write that failed and may have been applied marks its
// operation in doubt, and a single-item write's is not retried.
var atMostOnce = middleware.FinalizeMiddlewareFunc("AtMostOnceWrites", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleFinalize(ctx, in)
	if err == nil || !MaybeApplied(err) {
		return out, md, err
	}
	if doubt, ok := middleware.GetStackValue(ctx, doubtKey{}).(*atomic.Bool); ok {
		doubt.Store(true)
	}
	if singleWrite(middleware.GetOperationName(ctx)) {
		err = &InDoubtError{Err: err}
	}
	return out, md, err
})

// rememberDoubt wraps one write operation, all its attempts: its final error
// is in doubt when any attempt may have been applied.
var rememberDoubt = middleware.InitializeMiddlewareFunc("RememberDoubt", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	op := middleware.GetOperationName(ctx)
	if !singleWrite(op) && op != "TransactWriteItems" {
		return next.HandleInitialize(ctx, in)
	}
	var doubt atomic.Bool
	out, md, err := next.HandleInitialize(middleware.WithStackValue(ctx, doubtKey{}, &doubt), in)
	if err != nil && doubt.Load() && !IsInDoubt(err) {
		err = &InDoubtError{Err: err}
	}
	return out, md, err
})

func singleWrite(op string) bool {
	switch op {
	case "PutItem", "UpdateItem", "DeleteItem":
		return true
	}
	return false
}

// addAtMostOnce installs atMostOnce inside the retry loop and rememberDoubt
// around it.
func addAtMostOnce(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
		if err := s.Initialize.Add(rememberDoubt, middleware.After); err != nil {
			return err
		}
		return s.Finalize.Insert(atMostOnce, "Retry", middleware.After)
	})
}
