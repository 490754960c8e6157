package store_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// stub is a DynamoDB endpoint that hangs or answers a fixed error, counting requests.
type stub struct {
	hits atomic.Int64
	mode atomic.Value // "hang", "throttle", "ok"
}

func (s *stub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	// Reading the body lets the server notice the client hanging up.
	_, _ = io.Copy(io.Discard, r.Body)
	switch s.mode.Load() {
	case "hang":
		<-r.Context().Done()
	case "throttle":
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}`))
	default:
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		_, _ = w.Write([]byte(`{}`))
	}
}

func breakerClient(t *testing.T, url string, b *store.Breaker) *dynamodb.Client {
	t.Helper()
	cfg, err := config.Load("test", func(k string) string {
		return map[string]string{"DYNAMODB_ENDPOINT": url, "DB_TIMEOUT": "200", "AWS_REGION": "us-east-1"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	ac, err := store.LoadAWS(context.Background(), cfg.Region, cfg.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	return store.NewDynamoDB(ac, cfg.DynamoDBEndpoint, cfg.DBTimeout, b.Option(), func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 })
}

func getItem(ctx context.Context, c *dynamodb.Client) error {
	_, err := c.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String("t"), Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "k"}},
	})
	return err
}

func TestBreakerFailsFastAfterATimeoutUntilTheCooldownEnds(t *testing.T) {
	s := &stub{}
	s.mode.Store("hang")
	srv := httptest.NewServer(s)
	defer srv.Close()
	fake := clock.NewFake(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	b := store.NewBreaker(time.Second, fake.Now)
	c := breakerClient(t, srv.URL, b)
	ctx := context.Background()

	if err := getItem(ctx, c); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first call: %v, want the DB_TIMEOUT deadline", err)
	}
	if b.Trips() != 1 || s.hits.Load() != 1 {
		t.Fatalf("trips %d hits %d after the timeout, want 1 and 1", b.Trips(), s.hits.Load())
	}
	// Open: the next calls never reach the store and say it is unavailable.
	for i := 0; i < 3; i++ {
		err := getItem(ctx, c)
		if !errors.Is(err, store.ErrUnavailable) || !store.IsUnavailable(err) {
			t.Fatalf("call while open: %v, want ErrUnavailable", err)
		}
	}
	if s.hits.Load() != 1 {
		t.Fatalf("the store saw %d requests while the breaker was open, want 1", s.hits.Load())
	}
	fake.Advance(999 * time.Millisecond)
	if err := getItem(ctx, c); !errors.Is(err, store.ErrUnavailable) || s.hits.Load() != 1 {
		t.Fatalf("before the cooldown ends: %v, hits %d", err, s.hits.Load())
	}
	// After the cooldown one call tries the store again; it has recovered.
	s.mode.Store("ok")
	fake.Advance(time.Millisecond)
	if err := getItem(ctx, c); err != nil {
		t.Fatalf("after the cooldown: %v", err)
	}
	if s.hits.Load() != 2 || b.Trips() != 1 {
		t.Errorf("hits %d trips %d, want 2 and 1", s.hits.Load(), b.Trips())
	}
}

func TestBreakerIgnoresThrottlingAndTheCallersOwnDeadline(t *testing.T) {
	s := &stub{}
	s.mode.Store("throttle")
	srv := httptest.NewServer(s)
	defer srv.Close()
	b := store.NewBreaker(time.Second, clock.NewFake(time.Unix(0, 0)).Now)
	c := breakerClient(t, srv.URL, b)

	// A hot key's throttling is not an outage.
	for i := 0; i < 3; i++ {
		if err := getItem(context.Background(), c); !store.IsThrottled(err) {
			t.Fatalf("throttled call: %v", err)
		}
	}
	// The caller's own shorter deadline (e.g. the recorder's) is not the store's fault.
	s.mode.Store("hang")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := getItem(ctx, c); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller deadline: %v", err)
	}
	if b.Trips() != 0 {
		t.Fatalf("breaker tripped %d times on throttling or a caller's deadline", b.Trips())
	}
	if hits := s.hits.Load(); hits != 4 {
		t.Errorf("store saw %d requests, want every call (4)", hits)
	}
}
