package ratelimit_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/ratelimit"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// base is noon of apitest.Epoch: far in the future, so what a test sees is
// the limiter's own expiry logic, never an item DynamoDB Local's TTL sweep deleted.
var base = apitest.Epoch.Add(12 * time.Hour)

// small is a policy set whose numbers are easy to reason about: frontdoor
// RPM 20 + burst 5 = C 25, T = 3 s.
var small = map[string]string{
	"RATE_LIMIT_RPM": "20", "RATE_LIMIT_BURST": "5", "RATE_LIMIT_WINDOW": "60",
	"RATE_LIMIT_API_RPM": "6", "RATE_LIMIT_API_BURST": "0",
}

// testKeys stands in for the deployment keyring: these tests are about the
// buckets' store, so the key is already known, as on a warm instance (the
// functions' outage tests cover a cold one whose key cannot be read).
type testKeys struct{}

func (testKeys) Subkey(context.Context, string) ([]byte, error) {
	return []byte("limiter-test-subkey-0123456789ab"), nil
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)) }

// newLimiter is one "instance": its own SDK client, its own caches.
func newLimiter(t testing.TB, env *dynamotest.Env, c clock.Clock, opts ...func(*dynamodb.Options)) *lim {
	t.Helper()
	return build(t, env.NewClient(t, opts...), env.Config, c, quiet())
}

// build makes a limiter from a function's configuration, as platform does.
func build(t testing.TB, db ratelimit.API, cfg config.Config, c clock.Clock, logger *slog.Logger) *lim {
	t.Helper()
	s, err := platform.LimiterSettings(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Keys = testKeys{}
	l, err := ratelimit.New(db, s, c, logger)
	if err != nil {
		t.Fatal(err)
	}
	return &lim{Limiter: l, status: cfg.RateLimitStatus}
}

// lim is a limiter seen as the request layer answers with it: its decision
// rendered as headers and, on a refusal, the contract's error.
type lim struct {
	*ratelimit.Limiter
	status int // RATE_LIMIT_STATUS
}

// result is a decision as the request layer renders it.
type result struct {
	Headers map[string]string
	Denied  bool
	Deny    *httpapi.Error
}

func (l *lim) Limit(ctx context.Context, policy string, c client) (result, error) {
	d, err := l.Limiter.Limit(ctx, policy, ratelimit.ClientKey(c.userID, ratelimit.ClientIP(c.ip, "", nil)))
	if err != nil {
		return result{}, err
	}
	h, deny := httpapi.LimitAnswer(d, l.status)
	return result{Headers: h, Denied: deny != nil, Deny: deny}, nil
}

// client is who sends a request: an address, and a user when signed in.
type client struct{ ip, userID string }

func req(ip string) client { return client{ip: ip} }

func limit(t *testing.T, l *lim, policy string, r client) result {
	t.Helper()
	res, err := l.Limit(context.Background(), policy, r)
	if err != nil {
		t.Fatalf("Limit: %v", err)
	}
	return res
}

// The DynamoDB path agrees with the in-memory GCRA step by step, across two
// instances whose hints disagree, in at most two calls per decision.
func TestDynamoMatchesReference(t *testing.T) {
	env := dynamotest.New(t, "test", small)
	fake := clock.NewFake(base)
	var calls [2]store.CallCounter
	ls := []*lim{newLimiter(t, env, fake, calls[0].Option()), newLimiter(t, env, fake, calls[1].Option())}
	p, _ := ls[0].Policy(ratelimit.PolicyFrontdoor)
	rng := rand.New(rand.NewPCG(7, 9))
	var tat int64
	for i := 0; i < 160; i++ {
		// Mostly bursts, sometimes long idle gaps (so the idle branch is exercised after busy spells).
		switch rng.IntN(10) {
		case 0:
			fake.Advance(time.Duration(rng.IntN(200)) * time.Second)
		case 1, 2, 3:
			fake.Advance(time.Duration(rng.IntN(4000)) * time.Millisecond)
		}
		now := fake.Now().UnixMicro()
		want := p.Step(tat, now)
		i := rng.IntN(2)
		before := calls[i].Count("UpdateItem")
		res := limit(t, ls[i], ratelimit.PolicyFrontdoor, req("203.0.113.1"))
		if n := calls[i].Count("UpdateItem") - before; n > 2 {
			t.Fatalf("step %d: %d UpdateItem calls", i, n)
		}
		if res.Denied == want.Allowed {
			t.Fatalf("step %d at +%v: denied=%v, reference allowed=%v", i, fake.Now().Sub(base), res.Denied, want.Allowed)
		}
		if got, w := res.Headers["X-RateLimit-Remaining"], strconv.Itoa(p.Remaining(want)); got != w {
			t.Fatalf("step %d: remaining %s, want %s", i, got, w)
		}
		if want.Allowed {
			tat = want.TAT
		}
	}
	if calls[0].Count("GetItem")+calls[1].Count("GetItem") != 0 {
		t.Error("the limiter read before writing")
	}
}

// Many instances, each with its own client, fire together well over C for one
// client under a frozen clock: exactly C are admitted, every run. A second
// client is unaffected; one more is admitted after T and not before.
func TestExactAcrossInstances(t *testing.T) {
	env := dynamotest.New(t, "test", small)
	fake := clock.NewFake(base)
	const instances = 6
	ls := make([]*lim, instances)
	for i := range ls {
		ls[i] = newLimiter(t, env, fake)
	}
	p, _ := ls[0].Policy(ratelimit.PolicyFrontdoor)
	fire := func(ip string, perInstance int) int {
		var admitted atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, l := range ls {
			for j := 0; j < perInstance; j++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					res, err := l.Limit(context.Background(), ratelimit.PolicyFrontdoor, req(ip))
					if err != nil {
						t.Error(err)
						return
					}
					if !res.Denied {
						admitted.Add(1)
					}
				}()
			}
		}
		close(start)
		wg.Wait()
		return int(admitted.Load())
	}
	for run := 0; run < 3; run++ {
		ip := fmt.Sprintf("198.51.100.%d", run+1)
		if got := fire(ip, 20); got != p.Capacity() {
			t.Fatalf("run %d: %d admitted of %d, want exactly C = %d", run, got, instances*20, p.Capacity())
		}
	}
	if got := fire("192.0.2.200", 10); got != p.Capacity() {
		t.Errorf("second client: %d admitted, want C = %d", got, p.Capacity())
	}
	fake.Advance(time.Duration(p.T)*time.Microsecond - time.Microsecond)
	if got := fire("198.51.100.1", 5); got != 0 {
		t.Errorf("%d admitted 1 µs before T, want 0", got)
	}
	fake.Advance(time.Microsecond)
	if got := fire("198.51.100.1", 5); got != 1 {
		t.Errorf("%d admitted at T, want exactly 1", got)
	}
}

// Repeated denials on a warm instance cost no DynamoDB call; the cache only
// denies: once the next admission time comes, the store decides again.
func TestRepeatedDenialsMakeNoCalls(t *testing.T) {
	env := dynamotest.New(t, "test", small)
	fake := clock.NewFake(base)
	var calls store.CallCounter
	l := newLimiter(t, env, fake, calls.Option())
	p, _ := l.Policy(ratelimit.PolicyAPI) // C = 6, T = 10 s
	for i := 0; i < p.Capacity(); i++ {
		if limit(t, l, ratelimit.PolicyAPI, req("203.0.113.9")).Denied {
			t.Fatalf("request %d denied", i)
		}
	}
	if limit(t, l, ratelimit.PolicyAPI, req("203.0.113.9")).Denied != true {
		t.Fatal("C+1 admitted")
	}
	calls.Reset()
	for i := 0; i < 50; i++ {
		res := limit(t, l, ratelimit.PolicyAPI, req("203.0.113.9"))
		if !res.Denied || res.Deny.Headers["Retry-After"] == "" {
			t.Fatalf("cached deny %d: %+v", i, res)
		}
		fake.Advance(100 * time.Millisecond) // 5 s in all, still before T
	}
	if n := calls.Total(); n != 0 {
		t.Errorf("%d DynamoDB calls for 50 repeated denials, want 0", n)
	}
	if s := l.Stats(); s.CachedDenies != 50 {
		t.Errorf("stats = %+v", s)
	}
	fake.Advance(5 * time.Second) // now exactly T after the burst
	if limit(t, l, ratelimit.PolicyAPI, req("203.0.113.9")).Denied {
		t.Error("denied at the next admission time: the cache must not outlive it")
	}
	if calls.Count("UpdateItem") == 0 {
		t.Error("the admission was not decided by the store")
	}
}

// An item TTL has not swept yet (tat and ttl in the past) is an idle bucket,
// never trusted as state; written ttl never precedes the tat it guards.
func TestExpiredStateNotTrusted(t *testing.T) {
	env := dynamotest.New(t, "test", small)
	fake := clock.NewFake(base)
	l := newLimiter(t, env, fake)
	p, _ := l.Policy(ratelimit.PolicyAPI)
	key, err := l.StorageKey(context.Background(), ratelimit.PolicyAPI, "ip:203.0.113.50")
	if err != nil {
		t.Fatal(err)
	}
	old := base.Add(-time.Hour)
	_, err = env.Client.PutItem(context.Background(), &dynamodb.PutItemInput{
		TableName: aws.String(env.Tables.RateLimits),
		Item: map[string]types.AttributeValue{
			"pk":  &types.AttributeValueMemberS{Value: key},
			"tat": &types.AttributeValueMemberN{Value: strconv.FormatInt(old.UnixMicro(), 10)},
			"ttl": &types.AttributeValueMemberN{Value: strconv.FormatInt(old.Unix(), 10)},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	admitted := 0
	for i := 0; i < p.Capacity()+3; i++ {
		if !limit(t, l, ratelimit.PolicyAPI, req("203.0.113.50")).Denied {
			admitted++
		}
	}
	if admitted != p.Capacity() {
		t.Errorf("admitted %d, want C = %d (stale item = idle bucket, no credit from the past)", admitted, p.Capacity())
	}
	out, err := env.Client.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(env.Tables.RateLimits), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: key}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tat, _ := strconv.ParseInt(out.Item["tat"].(*types.AttributeValueMemberN).Value, 10, 64)
	ttl, _ := strconv.ParseInt(out.Item["ttl"].(*types.AttributeValueMemberN).Value, 10, 64)
	if ttl*1_000_000 < tat {
		t.Errorf("ttl %d precedes tat %d", ttl, tat)
	}
	if tat != base.UnixMicro()+int64(p.Capacity())*p.T {
		t.Errorf("tat = %d, want now + C·T", tat)
	}
	for k := range out.Item {
		if k != "pk" && k != "tat" && k != "ttl" {
			t.Errorf("unexpected attribute %q stored", k)
		}
	}
	if strings.Contains(fmt.Sprint(out.Item), "203.0.113.50") {
		t.Error("raw IP stored")
	}
}

// Weird client ids (long, odd bytes, unicode look-alikes) keep separate,
// working buckets.
func TestWeirdClientIDs(t *testing.T) {
	env := dynamotest.New(t, "test", small)
	fake := clock.NewFake(base)
	l := newLimiter(t, env, fake)
	p, _ := l.Policy(ratelimit.PolicyAPI)
	ids := []string{strings.Repeat("x", 300), strings.Repeat("x", 301), "\x00\xff\xfe", "café", "cafe\u0301", "日本語🙂", "id with \"quotes\" and #hash"}
	for _, id := range ids {
		r := req("203.0.113.1")
		r.userID = id
		for i := 0; i < p.Capacity(); i++ {
			if limit(t, l, ratelimit.PolicyAPI, r).Denied {
				t.Fatalf("id %q: request %d denied: buckets collide", id, i)
			}
		}
		if !limit(t, l, ratelimit.PolicyAPI, r).Denied {
			t.Fatalf("id %q: C+1 admitted", id)
		}
	}
}

func TestHeaders(t *testing.T) {
	env := dynamotest.New(t, "test", small)
	fake := clock.NewFake(base.Add(250 * time.Millisecond))
	l := newLimiter(t, env, fake)
	now := fake.Now()
	res := limit(t, l, ratelimit.PolicyAPI, req("203.0.113.2")) // api: RPM 6, C 6, T 10 s
	want := map[string]string{
		"X-RateLimit-Limit":     "6",
		"X-RateLimit-Remaining": "5",
		"X-RateLimit-Reset":     strconv.FormatInt(now.Add(10*time.Second).UnixMilli(), 10),
		"RateLimit-Policy":      `"api";q=6;w=60`,
		"RateLimit":             `"api";r=5;t=10`,
	}
	for k, v := range want {
		if res.Headers[k] != v {
			t.Errorf("allow %s = %q, want %q", k, res.Headers[k], v)
		}
	}
	for i := 0; i < 5; i++ {
		limit(t, l, ratelimit.PolicyAPI, req("203.0.113.2"))
	}
	fake.Advance(1500 * time.Millisecond)
	res = limit(t, l, ratelimit.PolicyAPI, req("203.0.113.2"))
	if !res.Denied || res.Deny.Status != http.StatusTooManyRequests || res.Deny.Code != httpapi.CodeRateLimit {
		t.Fatalf("deny = %+v", res)
	}
	// Next admission: T after the first request, 8.5 s from now.
	wantDeny := map[string]string{
		"X-RateLimit-Remaining": "0",
		"X-RateLimit-Reset":     strconv.FormatInt(now.Add(10*time.Second).UnixMilli(), 10),
		"RateLimit":             `"api";r=0;t=9`,
	}
	for k, v := range wantDeny {
		if res.Headers[k] != v {
			t.Errorf("deny %s = %q, want %q", k, res.Headers[k], v)
		}
	}
	if res.Deny.Headers["Retry-After"] != "9" || res.Deny.Extra["retryAfter"] != int64(9) ||
		res.Deny.Extra["severity"] != "low" || res.Deny.Extra["advice"] == "" {
		t.Errorf("deny error = %+v", res.Deny)
	}
}

func TestStatus503(t *testing.T) {
	env := dynamotest.New(t, "test", apitest.Merge(small, map[string]string{"RATE_LIMIT_STATUS": "503"}))
	l := newLimiter(t, env, clock.NewFake(base))
	for i := 0; i < 6; i++ {
		limit(t, l, ratelimit.PolicyAPI, req("203.0.113.3"))
	}
	res := limit(t, l, ratelimit.PolicyAPI, req("203.0.113.3"))
	if !res.Denied || res.Deny.Status != 503 || res.Deny.Code != httpapi.CodeRateLimit {
		t.Errorf("deny = %+v, want 503 RATE_LIMIT", res.Deny)
	}
}

func TestShadowNeverBlocks(t *testing.T) {
	env := dynamotest.New(t, "test", apitest.Merge(small, map[string]string{"RATE_LIMIT_SHADOW": "true"}))
	l := newLimiter(t, env, clock.NewFake(base))
	for i := 0; i < 20; i++ {
		res := limit(t, l, ratelimit.PolicyAPI, req("203.0.113.4"))
		if res.Denied || res.Deny != nil {
			t.Fatalf("request %d blocked in shadow mode", i)
		}
		if res.Headers["X-RateLimit-Limit"] != "6" {
			t.Fatalf("headers missing in shadow mode: %v", res.Headers)
		}
	}
	s := l.Stats()
	if s.Allowed != 6 || s.ShadowDenies != 14 {
		t.Errorf("stats = %+v, want 6 allowed (only admissions count) and 14 shadow denies", s)
	}
}

func TestUnknownPolicy(t *testing.T) {
	env := dynamotest.New(t, "test", small)
	l := newLimiter(t, env, clock.NewFake(base))
	if _, err := l.Limit(context.Background(), "nope", req("203.0.113.1")); err == nil {
		t.Error("unknown policy accepted")
	}
}

// offline builds a limiter whose DynamoDB is the given endpoint.
func offline(t *testing.T, endpoint string, extra map[string]string, opts ...func(*dynamodb.Options)) (*lim, *bytes.Buffer) {
	l, logs, _ := offlineAt(t, endpoint, extra, opts...)
	return l, logs
}

func offlineAt(t *testing.T, endpoint string, extra map[string]string, opts ...func(*dynamodb.Options)) (*lim, *bytes.Buffer, *clock.Fake) {
	t.Helper()
	vars := apitest.Merge(small, map[string]string{"DYNAMODB_ENDPOINT": endpoint, "DB_TIMEOUT": "300", "AWS_REGION": "us-east-1"}, extra)
	cfg, err := config.Load("test", func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	ac, err := store.LoadAWS(context.Background(), cfg.Region, cfg.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	fake := clock.NewFake(base)
	// As platform.New builds it: the breaker outermost, on the injected clock.
	opts = append([]func(*dynamodb.Options){store.NewBreaker(store.BreakerCooldown, fake.Now).Option()}, opts...)
	client := store.NewDynamoDB(ac, cfg.DynamoDBEndpoint, cfg.DBTimeout, append(opts, func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 })...)
	var logs bytes.Buffer
	l := build(t, client, cfg, fake, slog.New(slog.NewJSONHandler(&logs, nil)))
	return l, &logs, fake
}

// hanging is a server that accepts and never answers: every call times out.
func hanging(t *testing.T) string {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) }) // runs first: release handlers so Close can return
	return srv.URL
}

func TestFailOpenIsBounded(t *testing.T) {
	for name, endpoint := range map[string]func(*testing.T) string{"unreachable": func(t *testing.T) string { return apitest.ClosedURL(t) }, "timing out": hanging} {
		t.Run(name, func(t *testing.T) {
			var calls store.CallCounter
			l, logs, fake := offlineAt(t, endpoint(t), map[string]string{"RATE_LIMIT_FAIL_MODE": "open"}, calls.Option())
			admitted := 0
			for i := 0; i < 10; i++ {
				if !limit(t, l, ratelimit.PolicyAPI, req("203.0.113.77")).Denied {
					admitted++
				}
			}
			if admitted != 6 {
				t.Errorf("fail open admitted %d of 10, want the in-memory bucket's C = 6", admitted)
			}
			if s := l.Stats(); s.Fallbacks != 10 {
				t.Errorf("stats = %+v, want 10 fallbacks counted", s)
			}
			if !strings.Contains(logs.String(), "ratelimit_fallback") || strings.Contains(logs.String(), "203.0.113") {
				t.Errorf("fallback log wrong (missing, or carries the client IP): %s", logs.String())
			}
			// One failed call, then the instance stops waiting on the store for the cooldown...
			if n := calls.Count("UpdateItem"); n != 1 {
				t.Errorf("%d UpdateItem attempts during the cooldown, want 1", n)
			}
			// ...and tries it again after it.
			fake.Advance(store.BreakerCooldown)
			limit(t, l, ratelimit.PolicyAPI, req("203.0.113.77"))
			if n := calls.Count("UpdateItem"); n != 2 {
				t.Errorf("%d UpdateItem attempts after the cooldown, want 2", n)
			}
		})
	}
}

func TestFailClosed(t *testing.T) {
	l, _ := offline(t, apitest.ClosedURL(t), map[string]string{"RATE_LIMIT_FAIL_MODE": "closed"})
	res := limit(t, l, ratelimit.PolicyAPI, req("203.0.113.78"))
	if !res.Denied || res.Deny.Status != 503 || res.Deny.Code != httpapi.CodeServiceUnavailable || res.Deny.Headers["Retry-After"] == "" {
		t.Errorf("fail closed = %+v, want 503 SERVICE_UNAVAILABLE with Retry-After", res.Deny)
	}
	if l.Stats().Fallbacks != 1 {
		t.Errorf("stats = %+v", l.Stats())
	}
	shadow, _ := offline(t, apitest.ClosedURL(t), map[string]string{"RATE_LIMIT_FAIL_MODE": "closed", "RATE_LIMIT_SHADOW": "true"})
	if limit(t, shadow, ratelimit.PolicyAPI, req("203.0.113.78")).Denied {
		t.Error("shadow mode blocked on a closed fallback")
	}
}

// A DynamoDB that throttles the bucket's key refuses the request and never
// opens the gate, even in fail-open mode.
func TestThrottledHotKeyNeverOpens(t *testing.T) {
	for _, code := range []string{"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"} {
		t.Run(code, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-amz-json-1.0")
				w.Header().Set("X-Amzn-ErrorType", code)
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, `{"__type":"com.amazonaws.dynamodb.v20120810#%s","message":"slow down"}`, code)
			}))
			defer srv.Close()
			l, _ := offline(t, srv.URL, map[string]string{"RATE_LIMIT_FAIL_MODE": "open"})
			for i := 0; i < 3; i++ {
				res := limit(t, l, ratelimit.PolicyAPI, req("203.0.113.79"))
				if !res.Denied || res.Deny.Code != httpapi.CodeRateLimit || res.Deny.Headers["Retry-After"] != "1" {
					t.Fatalf("throttled key: %+v, want RATE_LIMIT with Retry-After 1", res.Deny)
				}
			}
			if s := l.Stats(); s.Throttled != 3 || s.Fallbacks != 0 {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}
