// Package store builds the DynamoDB client every function shares and classifies
// its errors. The client is built once per instance.
package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// LoadAWS loads the AWS configuration for region. With a DynamoDB endpoint
// override (the local stack) it uses fixed dummy credentials, so nothing
// reaches for a real account or the instance metadata service.
func LoadAWS(ctx context.Context, region, endpoint string) (aws.Config, error) {
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(region)}
	if endpoint != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("local", "local", "")))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	return ac, nil
}

// NewDynamoDB builds the DynamoDB client: the endpoint override and its
// checksum quirk only when endpoint (DYNAMODB_ENDPOINT) is set, every
// operation (retries included) bounded by timeout (DB_TIMEOUT), and
// single-item writes never retried once they may have been applied
// (InDoubtError).
func NewDynamoDB(ac aws.Config, endpoint string, timeout time.Duration, extra ...func(*dynamodb.Options)) *dynamodb.Client {
	opts := []func(*dynamodb.Options){func(o *dynamodb.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			// DynamoDB Local answers some errors with a CRC32 that does not
			// match the body; never disable this against AWS.
			o.DisableValidateResponseChecksum = true
		}
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(operationTimeout(timeout), middleware.Before)
		})
		addAtMostOnce(o)
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
	if errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || IsInDoubt(err) {
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
	// Once the SDK's retry quota is spent (a run of failures), it gives up
	// on a retryable error with this one instead of a MaxAttemptsError.
	var quota ratelimit.QuotaExceededError
	if errors.As(err, &quota) {
		return true
	}
	// DynamoDB's own failure (500 InternalServerError, 503): the service,
	// not the request, is at fault.
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() >= 500 {
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

// CallCounter counts DynamoDB operations by name and by table; tests and
// benchmarks attach it with Option to prove how many calls a path makes, and
// on which tables.
type CallCounter struct {
	mu       sync.Mutex
	counts   map[string]int // by operation name
	tables   map[string]int // by table, its indexes included
	accesses map[Access]int // by (IAM action, table or index)
}

// Option returns a client option that feeds this counter.
func (c *CallCounter) Option() func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(middleware.InitializeMiddlewareFunc("CallCounter", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				var buf [4]Access
				c.add(middleware.GetOperationName(ctx), appendAccesses(buf[:0], in.Parameters))
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
		})
	}
}

// add counts one operation: once under its name, once under each table and
// each access it needs (a transaction of two puts on one table counts once).
func (c *CallCounter) add(op string, as []Access) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts, c.tables, c.accesses = map[string]int{}, map[string]int{}, map[Access]int{}
	}
	c.counts[op]++
	for i, a := range as {
		if !slices.Contains(as[:i], a) {
			c.accesses[a]++
		}
		table := baseTable(a.Table)
		if !slices.ContainsFunc(as[:i], func(b Access) bool { return baseTable(b.Table) == table }) {
			c.tables[table]++
		}
	}
}

// baseTable is the table of an Access.Table ("<table>/index/<index>" → "<table>").
func baseTable(t string) string {
	table, _, _ := strings.Cut(t, "/index/")
	return table
}

// Count returns how many times op ran.
func (c *CallCounter) Count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[op]
}

// CountTable returns how many operations touched table (or one of its indexes).
func (c *CallCounter) CountTable(table string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tables[table]
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

// Snapshot returns a copy of the counts by operation name.
func (c *CallCounter) Snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return copyCounts(c.counts)
}

// AccessSnapshot returns a copy of the counts by access: how many operations
// needed each (IAM action, table or index).
func (c *CallCounter) AccessSnapshot() map[Access]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return copyCounts(c.accesses)
}

// copyCounts copies m; never nil.
func copyCounts[K comparable](m map[K]int) map[K]int {
	out := make(map[K]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Reset zeroes the counts.
func (c *CallCounter) Reset() {
	c.mu.Lock()
	c.counts, c.tables, c.accesses = nil, nil, nil
	c.mu.Unlock()
}
