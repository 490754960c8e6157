// Package store builds the DynamoDB client every function shares and classifies
// its errors. The client is built once per instance.
package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/zenithfresh/zenith-serverless/shared/config"
)

// LoadAWS loads the AWS configuration for cfg. With DYNAMODB_ENDPOINT set (the
// local stack) it uses fixed dummy credentials, so nothing reaches for a real
// account or the instance metadata service.
func LoadAWS(ctx context.Context, cfg config.Config) (aws.Config, error) {
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(cfg.Region)}
	if cfg.DynamoDBEndpoint != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("local", "local", "")))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	return ac, nil
}

// NewDynamoDB builds the DynamoDB client: the endpoint override and its
// checksum quirk only when DYNAMODB_ENDPOINT is set, and every operation
// (retries included) bounded by DB_TIMEOUT.
func NewDynamoDB(ac aws.Config, cfg config.Config, extra ...func(*dynamodb.Options)) *dynamodb.Client {
	timeout := cfg.DBTimeout
	opts := []func(*dynamodb.Options){func(o *dynamodb.Options) {
		if cfg.DynamoDBEndpoint != "" {
			o.BaseEndpoint = aws.String(cfg.DynamoDBEndpoint)
			// DynamoDB Local answers some errors with a CRC32 that does not
			// match the body; never disable this against AWS.
			o.DisableValidateResponseChecksum = true
		}
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(operationTimeout(timeout), middleware.Before)
		})
	}}
	return dynamodb.NewFromConfig(ac, append(opts, extra...)...)
}

func operationTimeout(d time.Duration) middleware.InitializeMiddleware {
	return middleware.InitializeMiddlewareFunc("OperationTimeout", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		if d <= 0 {
			return next.HandleInitialize(ctx, in)
		}
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return next.HandleInitialize(ctx, in)
	})
}

// ErrUnavailable marks an error as "the store could not be reached in time".
var ErrUnavailable = errors.New("store unavailable")

// IsUnavailable reports whether err means the store is down, unreachable,
// timing out or throttling, rather than a bug or a rejected request.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var maxAttempts *retry.MaxAttemptsError
	if errors.As(err, &maxAttempts) {
		return true
	}
	return IsThrottled(err)
}

// IsThrottled reports whether DynamoDB refused the call for capacity.
func IsThrottled(err error) bool {
	var pte *types.ProvisionedThroughputExceededException
	var rle *types.RequestLimitExceeded
	if errors.As(err, &pte) || errors.As(err, &rle) {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded":
			return true
		}
	}
	return false
}

// IsConditionFailed reports whether err is a failed condition expression.
func IsConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// CallCounter counts DynamoDB operations by name; tests and benchmarks attach
// it with Option to prove how many calls a path makes.
type CallCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

// Option returns a client option that feeds this counter.
func (c *CallCounter) Option() func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(middleware.InitializeMiddlewareFunc("CallCounter", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				c.add(middleware.GetOperationName(ctx))
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
		})
	}
}

func (c *CallCounter) add(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	c.counts[op]++
}

// Count returns how many times op ran.
func (c *CallCounter) Count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[op]
}

// Total returns the number of operations of any kind.
func (c *CallCounter) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.counts {
		n += v
	}
	return n
}

// Snapshot returns a copy of the counts.
func (c *CallCounter) Snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// Reset zeroes the counts.
func (c *CallCounter) Reset() {
	c.mu.Lock()
	c.counts = nil
	c.mu.Unlock()
}
