package store

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"
)

// Bounds of the administrative client. Creating a table is a control-plane
// call that a busy DynamoDB Local (a JVM sharing two cores with test runs)
// can take seconds to answer; DB_TIMEOUT (5 s) is sized for the functions'
// data calls and cut table creation short.
const (
	// AdminTimeout bounds one administrative operation, its retries included.
	AdminTimeout = 30 * time.Second
	// AdminMaxAttempts is how many attempts the client makes per operation.
	AdminMaxAttempts = 8
	// AdminMaxBackoff caps the pause between two attempts.
	AdminMaxBackoff = 2 * time.Second
)

// NewAdminDynamoDB builds a client for administrative calls (CreateTable,
// UpdateTimeToLive, DescribeTimeToLive, ...), for the table bootstrap, the
// local server and the tests' tables; the functions' own clients come from
// NewDynamoDB. The endpoint override and its checksum quirk apply only when
// endpoint is set, as in NewDynamoDB. Each operation is bounded by
// AdminTimeout instead of DB_TIMEOUT, and a failed attempt is retried up to
// AdminMaxAttempts times with backoff, without the SDK's retry quota (which
// a slow emulator would drain and then fail every call fast).
func NewAdminDynamoDB(ac aws.Config, endpoint string, extra ...func(*dynamodb.Options)) *dynamodb.Client {
	opts := []func(*dynamodb.Options){func(o *dynamodb.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			// DynamoDB Local answers some errors with a CRC32 that does not
			// match the body; never disable this against AWS.
			o.DisableValidateResponseChecksum = true
		}
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = AdminMaxAttempts
			so.MaxBackoff = AdminMaxBackoff
			so.BaseDelay = 100 * time.Millisecond
			so.RateLimiter = ratelimit.None
		})
		o.RetryMaxAttempts = 0 // AWS_MAX_ATTEMPTS would cap the retryer above
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(operationTimeout(AdminTimeout), middleware.Before)
		})
	}}
	return dynamodb.NewFromConfig(ac, append(opts, extra...)...)
}
