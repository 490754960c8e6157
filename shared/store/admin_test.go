package store_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"

	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

func adminClient(t *testing.T, endpoint string, extra ...func(*dynamodb.Options)) *dynamodb.Client {
	t.Helper()
	cfg, err := config.Load("test", func(k string) string {
		return map[string]string{"DYNAMODB_ENDPOINT": endpoint, "AWS_REGION": "us-east-1"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	ac, err := store.LoadAWS(context.Background(), cfg.Region, cfg.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	return store.NewAdminDynamoDB(ac, endpoint, extra...)
}

// An administrative call gets AdminTimeout, not DB_TIMEOUT: the deadline the
// operation runs under is read inside the client's middleware stack.
func TestAdminCallsHaveTheirOwnBound(t *testing.T) {
	env := dynamotest.New(t, "test", map[string]string{"DB_TIMEOUT": "200"})
	var left atomic.Int64
	probe := func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(middleware.InitializeMiddlewareFunc("DeadlineProbe", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if d, ok := ctx.Deadline(); ok {
					left.Store(int64(time.Until(d)))
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
		})
	}
	db := adminClient(t, env.Config.DynamoDBEndpoint, probe)
	if _, err := db.DescribeTimeToLive(context.Background(), &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(env.Tables.Users)}); err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(left.Load()); got <= store.AdminTimeout/2 || got > store.AdminTimeout {
		t.Errorf("operation deadline %v away, want AdminTimeout (%v), not DB_TIMEOUT", got, store.AdminTimeout)
	}
}

// A busy emulator's failures are retried: the first attempts get a 500 from a
// proxy in front of DynamoDB Local, and the call still succeeds.
func TestAdminCallsRetryTransientFailures(t *testing.T) {
	env := dynamotest.New(t, "test", nil)
	target, err := url.Parse(env.Config.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	const failures = 4 // more than the functions' client would retry
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) <= failures {
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"busy"}`))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()

	db := adminClient(t, srv.URL)
	out, err := db.DescribeTimeToLive(context.Background(), &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(env.Tables.Users)})
	if err != nil {
		t.Fatalf("after %d failed attempts: %v", failures, err)
	}
	if out.TimeToLiveDescription == nil || requests.Load() != failures+1 {
		t.Errorf("%d requests (want %d), description %+v", requests.Load(), failures+1, out.TimeToLiveDescription)
	}
}

func TestAdminClientEndpointOnlyLocally(t *testing.T) {
	local := adminClient(t, "http://127.0.0.1:8000").Options()
	if !local.DisableValidateResponseChecksum || aws.ToString(local.BaseEndpoint) != "http://127.0.0.1:8000" {
		t.Errorf("local client: checksum validation disabled=%v endpoint=%v", local.DisableValidateResponseChecksum, aws.ToString(local.BaseEndpoint))
	}
	if local.Retryer.MaxAttempts() != store.AdminMaxAttempts {
		t.Errorf("max attempts %d, want %d", local.Retryer.MaxAttempts(), store.AdminMaxAttempts)
	}
	remote := adminClient(t, "").Options()
	if remote.DisableValidateResponseChecksum || remote.BaseEndpoint != nil {
		t.Errorf("AWS client: checksum validation disabled=%v endpoint=%v", remote.DisableValidateResponseChecksum, remote.BaseEndpoint)
	}
}
