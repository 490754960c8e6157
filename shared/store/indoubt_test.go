package store_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// The SDK retries a write only when the failure proves DynamoDB did not
// apply it; an ADD whose answer was lost is applied exactly once, and
// reported as in doubt (and unavailable), not retried into a second count.
// Reads, and a TransactWriteItems (its token makes a retry a no-op), are
// retried as before. Every case runs through dbproxy in front of DynamoDB
// Local with the real client.
func TestWritesAreRetriedOnlyWhenProvablyNotApplied(t *testing.T) {
	env, proxy, ac := proxied(t)
	const attempts = 3
	db := store.NewDynamoDB(ac, proxy.URL(), 5*time.Second, func(o *dynamodb.Options) {
		o.RetryMaxAttempts = attempts
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = attempts
			so.MaxBackoff = 10 * time.Millisecond
			so.RateLimiter = ratelimit.None
		})
	})
	table := env.Tables.Metrics
	key := func(sk string) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "indoubt"}, "sk": &types.AttributeValueMemberS{Value: sk}}
	}
	add := func(ctx context.Context, sk string) error {
		_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(table), Key: key(sk), UpdateExpression: aws.String("ADD n :one"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":one": &types.AttributeValueMemberN{Value: "1"}},
		})
		return err
	}
	txAdd := func(ctx context.Context, sk string) error {
		_, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{{Update: &types.Update{
			TableName: aws.String(table), Key: key(sk), UpdateExpression: aws.String("ADD n :one"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":one": &types.AttributeValueMemberN{Value: "1"}},
		}}}})
		return err
	}
	get := func(ctx context.Context, sk string) error {
		_, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: key(sk)})
		return err
	}
	stored := func(sk string) int {
		t.Helper()
		out, err := env.Client.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: key(sk), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		n, ok := out.Item["n"].(*types.AttributeValueMemberN)
		if !ok {
			return 0
		}
		v, _ := strconv.Atoi(n.Value)
		return v
	}

	for _, tc := range []struct {
		name       string
		fault      dbproxy.Kind
		op         string
		call       func(context.Context, string) error
		wantCalls  int64 // calls the proxy saw (attempts)
		wantDoubt  bool  // store.IsInDoubt
		wantStored int   // n after the call (-1: not checked, a read)
	}{
		{"ADD whose answer is cut", dbproxy.Cut, "UpdateItem", add, 1, true, 1},
		{"ADD answered 500", dbproxy.ServerError, "UpdateItem", add, 1, true, 0},
		{"ADD throttled", dbproxy.Throttle, "UpdateItem", add, attempts, false, 0},
		{"read whose answer is cut", dbproxy.Cut, "GetItem", get, attempts, false, -1},
		// Retried (the token makes it safe), stored once, and still in doubt.
		{"transactional ADD whose answer is cut", dbproxy.Cut, "TransactWriteItems", txAdd, attempts, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sk := tc.name
			if err := proxy.SetFault(dbproxy.Fault{Kind: tc.fault, Operations: []string{tc.op}}); err != nil {
				t.Fatal(err)
			}
			proxy.Reset()
			err := tc.call(context.Background(), sk)
			calls := proxy.Stats().Operations[tc.op]
			if err := proxy.ClearFaults(); err != nil {
				t.Fatal(err)
			}
			if err == nil {
				t.Fatal("the call succeeded through the fault")
			}
			if !store.IsUnavailable(err) {
				t.Errorf("IsUnavailable(%v) = false", err)
			}
			if got := store.IsInDoubt(err); got != tc.wantDoubt {
				t.Errorf("IsInDoubt = %v, want %v (%v)", got, tc.wantDoubt, err)
			}
			if calls != tc.wantCalls {
				t.Errorf("%d attempts reached the proxy, want %d", calls, tc.wantCalls)
			}
			if tc.wantStored >= 0 {
				if got := stored(sk); got != tc.wantStored {
					t.Errorf("stored n = %d, want %d", got, tc.wantStored)
				}
			}
		})
	}

	// The last attempt's throttle proves nothing about the first, cut one:
	// the error stays in doubt, so a caller keeping counts resends the same
	// batch instead of merging its counts into a new one.
	t.Run("transactional ADD cut, then throttled", func(t *testing.T) {
		seq := &afterFirst{next: awshttp.NewBuildableClient(), then: func() {
			if err := proxy.ClearFaults(); err != nil {
				t.Error(err)
			}
			if err := proxy.SetFault(dbproxy.Fault{Kind: dbproxy.Throttle, Operations: []string{"TransactWriteItems"}}); err != nil {
				t.Error(err)
			}
		}}
		db := store.NewDynamoDB(ac, proxy.URL(), 5*time.Second, func(o *dynamodb.Options) {
			o.HTTPClient = seq
			o.RetryMaxAttempts = attempts
			o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = attempts
				so.MaxBackoff = 10 * time.Millisecond
				so.RateLimiter = ratelimit.None
			})
		})
		if err := proxy.SetFault(dbproxy.Fault{Kind: dbproxy.Cut, Operations: []string{"TransactWriteItems"}}); err != nil {
			t.Fatal(err)
		}
		proxy.Reset()
		_, err := db.TransactWriteItems(context.Background(), &dynamodb.TransactWriteItemsInput{
			ClientRequestToken: aws.String("cut-then-throttled"),
			TransactItems: []types.TransactWriteItem{{Update: &types.Update{
				TableName: aws.String(table), Key: key("cut then throttled"), UpdateExpression: aws.String("ADD n :one"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":one": &types.AttributeValueMemberN{Value: "1"}},
			}}},
		})
		st := proxy.Stats()
		if cerr := proxy.ClearFaults(); cerr != nil {
			t.Fatal(cerr)
		}
		if st.Faults[dbproxy.Cut] != 1 || st.Faults[dbproxy.Throttle] != attempts-1 {
			t.Fatalf("faults %v, want 1 cut and %d throttles: the test tested nothing", st.Faults, attempts-1)
		}
		if !store.IsInDoubt(err) || !store.MaybeApplied(err) || !store.IsUnavailable(err) {
			t.Errorf("err %v: in doubt %v, maybe applied %v, want both", err, store.IsInDoubt(err), store.MaybeApplied(err))
		}
		if got := stored("cut then throttled"); got != 1 {
			t.Errorf("stored n = %d, want the 1 the cut attempt applied", got)
		}
	})

	t.Run("connection refused: provably not applied", func(t *testing.T) {
		if err := proxy.SetFault(dbproxy.Fault{Kind: dbproxy.Refuse}); err != nil {
			t.Fatal(err)
		}
		err := add(context.Background(), "refused")
		if cerr := proxy.ClearFaults(); cerr != nil {
			t.Fatal(cerr)
		}
		if err == nil || store.IsInDoubt(err) || store.MaybeApplied(err) || !store.IsUnavailable(err) {
			t.Errorf("refused ADD: err %v, in doubt %v, maybe applied %v", err, store.IsInDoubt(err), store.MaybeApplied(err))
		}
	})
}

// proxied gives a test its tables and the AWS configuration of a client that
// reaches them through a dbproxy it controls.
func proxied(t *testing.T) (*dynamotest.Env, *dbproxy.Proxy, aws.Config) {
	t.Helper()
	env := dynamotest.New(t, "auth", nil)
	proxy, err := dbproxy.New(env.Config.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	ac, err := store.LoadAWS(context.Background(), env.Config.Region, proxy.URL())
	if err != nil {
		t.Fatal(err)
	}
	return env, proxy, ac
}

// Once the SDK's retry quota is spent, a 5xx comes back as "retry quota
// exceeded" instead of a MaxAttemptsError: still unavailable (a 503), not a
// bug (a 500).
func TestServerErrorPastTheRetryQuotaIsUnavailable(t *testing.T) {
	env, proxy, ac := proxied(t)
	db := store.NewDynamoDB(ac, proxy.URL(), 5*time.Second, func(o *dynamodb.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxBackoff = time.Millisecond
			so.RateLimiter = ratelimit.NewTokenRateLimit(5) // one retry's worth
		})
	})
	if err := proxy.SetFault(dbproxy.Fault{Kind: dbproxy.ServerError}); err != nil {
		t.Fatal(err)
	}
	var quota bool
	for i := range 3 {
		_, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(env.Tables.Metrics),
			Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "x"}, "sk": &types.AttributeValueMemberS{Value: "y"}}})
		if !store.IsUnavailable(err) {
			t.Errorf("call %d during 500s: IsUnavailable(%v) = false", i, err)
		}
		var q ratelimit.QuotaExceededError
		quota = quota || errors.As(err, &q)
	}
	if !quota {
		t.Error("no call ended on the retry quota: the test tested nothing")
	}
}

// A call made WithoutTrip never opens the breaker, though it fails fast
// while the breaker is open.
func TestWithoutTripNeverOpensTheBreaker(t *testing.T) {
	s := &stub{}
	s.mode.Store("hang")
	srv := httptest.NewServer(s)
	defer srv.Close()
	fake := clock.NewFake(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	b := store.NewBreaker(time.Second, fake.Now)
	c := breakerClient(t, srv.URL, b)
	background := store.WithoutTrip(context.Background())
	if err := getItem(background, c); !store.IsUnavailable(err) {
		t.Fatalf("timed-out call: %v", err)
	}
	if b.Trips() != 0 {
		t.Fatalf("a WithoutTrip call opened the breaker")
	}
	if err := getItem(context.Background(), c); !store.IsUnavailable(err) {
		t.Fatalf("timed-out call: %v", err)
	}
	if b.Trips() != 1 || s.hits.Load() != 2 {
		t.Fatalf("trips %d hits %d after an ordinary timeout, want 1 and 2", b.Trips(), s.hits.Load())
	}
	if err := getItem(background, c); !errors.Is(err, store.ErrUnavailable) || s.hits.Load() != 2 {
		t.Errorf("WithoutTrip call while open: %v after %d hits, want the breaker's fast failure", err, s.hits.Load())
	}
}

// afterFirst is an HTTP client that runs then once its first call is done:
// it changes the proxy's fault between a call's attempts.
type afterFirst struct {
	next aws.HTTPClient
	once sync.Once
	then func()
}

func (a *afterFirst) Do(r *http.Request) (*http.Response, error) {
	res, err := a.next.Do(r)
	a.once.Do(a.then)
	return res, err
}

// A transaction whose token DynamoDB is still applying may land: it is in
// doubt although DynamoDB answers it with a 4xx.
func TestTransactionInProgressMayBeApplied(t *testing.T) {
	err := fmt.Errorf("add minute counters: %w", &types.TransactionInProgressException{Message: aws.String("in progress")})
	if !store.MaybeApplied(err) {
		t.Errorf("MaybeApplied(%v) = false", err)
	}
	if store.MaybeApplied(&types.TransactionCanceledException{Message: aws.String("conflict")}) {
		t.Error("a cancelled transaction counts as maybe applied")
	}
}
