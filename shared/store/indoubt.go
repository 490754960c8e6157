package store

import (
	"context"
	"errors"
	"net"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
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
// counts, as possibly applied. TransactWriteItems is not concerned: its
// ClientRequestToken makes every retry within ten minutes a no-op.
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
// with a 4xx such as a failed condition or a throttle).
func MaybeApplied(err error) bool {
	if err == nil {
		return true
	}
	if errors.Is(err, ErrUnavailable) && !IsInDoubt(err) {
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

// atMostOnce is the per-attempt middleware (inside the SDK's retry loop)
// that marks the failed attempt of a single-item write InDoubtError when it
// may have been applied, so it is not retried.
var atMostOnce = middleware.FinalizeMiddlewareFunc("AtMostOnceWrites", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleFinalize(ctx, in)
	if err != nil && singleWrite(middleware.GetOperationName(ctx)) && MaybeApplied(err) {
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

// addAtMostOnce installs atMostOnce inside the retry loop.
func addAtMostOnce(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
		return s.Finalize.Insert(atMostOnce, "Retry", middleware.After)
	})
}
