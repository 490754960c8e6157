package metrics_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// flushEnv is one instance's recorder with METRICS_FLUSH_INTERVAL=1000 on a
// fake clock, and a reader of the counters it writes.
type flushEnv struct {
	rec      *metrics.Recorder
	fake     *clock.Fake
	calls    *store.CallCounter
	counters *metrics.Counters
	logs     *bytes.Buffer
}

func newFlushEnv(t *testing.T, start time.Time, db func(env *dynamotest.Env) metrics.CounterAPI) *flushEnv {
	t.Helper()
	calls := &store.CallCounter{}
	env := dynamotest.New(t, "auth", map[string]string{"METRICS_FLUSH_INTERVAL": "1000", "SLOW_QUERY_MS": "100"}, calls.Option())
	fake := clock.NewFake(start)
	var client metrics.CounterAPI = env.Client
	if db != nil {
		client = db(env)
	}
	logs := &bytes.Buffer{}
	s := withTimeout(platform.RecorderSettings(env.Config), emulatorTimeout)
	if s.FlushInterval != time.Second {
		t.Fatalf("FlushInterval = %v, want 1 s from METRICS_FLUSH_INTERVAL=1000", s.FlushInterval)
	}
	rec := metrics.NewRecorder(s, client, fake, nil, slog.New(slog.NewTextHandler(&syncWriter{w: logs}, nil)))
	return &flushEnv{rec: rec, fake: fake, calls: calls, counters: metrics.NewCounters(env.Client, env.Tables.Metrics, env.Config.MetricShards, fake), logs: logs}
}

// request is one request as the request layer runs it: Start as it begins,
// wait before it is answered, Record once answered.
func (e *flushEnv) request(ctx context.Context, o metrics.Observation) {
	wait := e.rec.Start(ctx)
	wait()
	o.At = e.fake.Now()
	e.rec.Record(ctx, o)
}

func (e *flushEnv) stored(t *testing.T, from, to time.Time) metrics.Counts {
	t.Helper()
	sum, err := e.counters.Sum(context.Background(), from, to)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// observation i of a varied stream: some failed, throttled, slow, admitted.
func observation(i int) metrics.Observation {
	o := metrics.Observation{Function: "auth", Route: "/api/auth", Method: "GET", Status: 200, Admitted: i%3 != 0,
		Duration: time.Duration(i%250) * time.Millisecond}
	switch {
	case i%17 == 0:
		o.Status = 500
	case i%11 == 0:
		o.Status, o.Code, o.Throttled, o.Admitted = 429, "RATE_LIMIT", true, false
	}
	return o
}

// (a) 1,000 requests over 10 s of fake time (one every 10 ms), across a
// minute boundary, with a 1 s interval: one flush per interval, one
// counter write per minute it holds, and the stored totals are exactly what was
// recorded.
func TestFlushAtMostOneWritePerIntervalAndMinute(t *testing.T) {
	start := base.Add(55 * time.Second) // the minute ends after request 500
	e := newFlushEnv(t, start, nil)
	ctx := context.Background()
	var want [2]metrics.Counts // by minute
	writes := map[int]int{}    // request index -> TransactWriteItems its Start made
	e.calls.Reset()
	for i := 0; i < 1000; i++ {
		before := e.calls.Count("TransactWriteItems")
		o := observation(i)
		e.request(ctx, o)
		if n := e.calls.Count("TransactWriteItems") - before; n > 0 {
			writes[i] = n
		}
		want[i/500] = want[i/500].Plus(metrics.Delta(o, 100*time.Millisecond))
		e.fake.Advance(10 * time.Millisecond)
	}
	// The first flush is at the first request that finds counts pending,
	// then one per second; the one at 60.01 s holds both minutes.
	wantWrites := map[int]int{1: 1, 101: 1, 201: 1, 301: 1, 401: 1, 501: 2, 601: 1, 701: 1, 801: 1, 901: 1}
	if len(writes) != len(wantWrites) {
		t.Errorf("writes by request = %v, want %v", writes, wantWrites)
	}
	for i, n := range wantWrites {
		if writes[i] != n {
			t.Errorf("request %d made %d writes, want %d (all: %v)", i, writes[i], n, writes)
		}
	}
	if p := e.rec.Pending(); p.Requests != 99 {
		t.Errorf("pending before the final flush = %d requests, want 99 (901..999)", p.Requests)
	}
	if err := e.rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.calls.Count("TransactWriteItems"); got != 12 || e.calls.Total() != 12 {
		t.Errorf("calls %v, want 12 TransactWriteItems for 1,000 requests (11 in flushes, 1 final)", e.calls.Snapshot())
	}
	minute := base
	for m := range want {
		if got := e.stored(t, minute, minute.Add(time.Minute)); got != want[m] {
			t.Errorf("minute %d stored %+v, want %+v", m, got, want[m])
		}
		minute = minute.Add(time.Minute)
	}
	if want[0].Requests != 500 || want[1].Requests != 500 || want[0].Errors5xx == 0 || want[0].Throttled == 0 || want[0].Slow == 0 {
		t.Errorf("the stream does not exercise every counter: %+v", want)
	}
}

// (b) An instance reclaimed without a final flush loses exactly the counts
// recorded since its last flush began: at most one interval's worth.
func TestFlushLossBoundWithoutFinalFlush(t *testing.T) {
	e := newFlushEnv(t, base, nil)
	ctx := context.Background()
	for i := 0; i < 250; i++ { // 2.5 s at 100 requests/s
		e.request(ctx, observation(i))
		e.fake.Advance(10 * time.Millisecond)
	}
	// Flushes began at requests 1, 101 and 201; the instance is dropped now.
	const lastFlushBegan = 201
	lost := e.rec.Pending()
	stored := e.stored(t, base, base.Add(time.Minute))
	if stored.Requests != lastFlushBegan || lost.Requests != 250-lastFlushBegan {
		t.Errorf("stored %d, pending %d; want %d stored and the %d recorded since the last flush began pending",
			stored.Requests, lost.Requests, lastFlushBegan, 250-lastFlushBegan)
	}
	if perInterval := int64(time.Second / (10 * time.Millisecond)); lost.Requests > perInterval {
		t.Errorf("lost %d requests, more than one interval's worth (%d)", lost.Requests, perInterval)
	}
	if stored.Plus(lost).Requests != 250 {
		t.Errorf("stored + pending = %d, want 250", stored.Plus(lost).Requests)
	}
}

// switchClient sends the counter calls to one of two real clients, so a test
// can take the table away and bring it back.
type switchClient struct {
	cur atomic.Pointer[dynamodb.Client]
}

func (s *switchClient) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	return s.cur.Load().TransactWriteItems(ctx, in, opts...)
}

func (s *switchClient) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return s.cur.Load().Query(ctx, in, opts...)
}

// (d) A flush that fails (nothing listens on the port) keeps its counts and
// logs; the next flush, an interval later, writes them.
func TestFailedFlushKeepsCountsForTheNext(t *testing.T) {
	closedURL := apitest.ClosedURL(t)
	sw := &switchClient{}
	var real *dynamodb.Client
	e := newFlushEnv(t, base, func(env *dynamotest.Env) metrics.CounterAPI {
		real = env.Client
		ac, err := store.LoadAWS(context.Background(), env.Config.Region, closedURL)
		if err != nil {
			t.Fatal(err)
		}
		sw.cur.Store(store.NewDynamoDB(ac, closedURL, 500*time.Millisecond))
		return sw
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the request's cancellation must not matter to the flush
	for i := 0; i < 3; i++ {
		e.request(ctx, observation(1))
	}
	// Request 1 flushed request 0 and failed; request 2 was within the interval.
	if !strings.Contains(e.logs.String(), "metrics counter write failed") {
		t.Errorf("failed flush not logged: %q", e.logs.String())
	}
	if p := e.rec.Pending().Requests; p != 3 {
		t.Errorf("pending after the failed flush = %d, want 3 (nothing lost)", p)
	}
	sw.cur.Store(real)
	e.calls.Reset()
	e.fake.Advance(time.Second)
	e.request(ctx, observation(1))
	if n := e.calls.Count("TransactWriteItems"); n != 1 {
		t.Errorf("the next flush made %d TransactWriteItems, want 1", n)
	}
	if got := e.stored(t, base, base.Add(time.Minute)).Requests; got != 3 {
		t.Errorf("stored %d requests after the next flush, want the 3 kept", got)
	}
	if err := e.rec.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.stored(t, base, base.Add(time.Minute)).Requests; got != 4 || e.rec.Pending().Requests != 0 {
		t.Errorf("stored %d, pending %d after the final flush; want 4 and 0", got, e.rec.Pending().Requests)
	}
}

// (e) Concurrent requests (Start, wait, Record) and clock moves: every count
// reaches the table exactly once, and flushes stay one per interval. Run
// with -race.
func TestFlushConcurrentRequests(t *testing.T) {
	e := newFlushEnv(t, base.Add(58*time.Second), nil)
	ctx := context.Background()
	const workers, each = 8, 60
	e.calls.Reset()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				e.request(ctx, observation(i))
				e.fake.Advance(10 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Duration(workers*each) * 10 * time.Millisecond // 4.8 s, across a minute boundary
	if err := e.rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := e.stored(t, base, base.Add(2*time.Minute))
	if got.Requests != workers*each || e.rec.Pending().Requests != 0 {
		t.Errorf("stored %d requests, pending %d; want %d and 0", got.Requests, e.rec.Pending().Requests, workers*each)
	}
	// At most one flush per interval (plus the first and the final), each of
	// at most two minutes.
	if n, limit := e.calls.Count("TransactWriteItems"), 2*(int(elapsed/time.Second)+2); n > limit {
		t.Errorf("%d TransactWriteItems for %d requests over %v, want at most %d", n, workers*each, elapsed, limit)
	}
}

// syncWriter serialises writes to a buffer shared with flush goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// (f) A flush whose batch is cut after DynamoDB applied it (every attempt's
// answer lost) keeps that batch as it is; the next flush writes it again
// with the same token, which DynamoDB applies at most once, and only then do
// newer counts follow: every request stored exactly once. A batch still in
// doubt past metrics.ResendWithin is dropped and logged, never resent.
func TestBatchInDoubtIsResentAsItIsAndCountedOnce(t *testing.T) {
	var proxy *dbproxy.Proxy
	e := newFlushEnv(t, base, func(env *dynamotest.Env) metrics.CounterAPI {
		var err error
		proxy, err = dbproxy.New(env.Config.DynamoDBEndpoint)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { proxy.Close() })
		return env.NewClient(t, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(proxy.URL()) })
	})
	ctx := context.Background()
	cut := func(on bool) {
		t.Helper()
		var err error
		if on {
			err = proxy.SetFault(dbproxy.Fault{Kind: dbproxy.Cut, Operations: []string{"TransactWriteItems"}})
		} else {
			err = proxy.ClearFaults()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	e.request(ctx, observation(1)) // nothing pending yet
	cut(true)
	e.request(ctx, observation(1)) // flushes the first: every attempt applied, every answer cut
	if p := e.rec.Pending().Requests; p != 2 {
		t.Fatalf("pending after the cut flush = %d, want 2 (the batch in doubt and the newest)", p)
	}
	if got := e.stored(t, base, base.Add(time.Minute)).Requests; got != 1 {
		t.Fatalf("stored %d after the cut flush, want the 1 that DynamoDB applied once despite the SDK's retries", got)
	}
	cut(false)
	e.fake.Advance(time.Second)
	proxy.Reset()
	e.request(ctx, observation(1)) // resends the batch in doubt, alone
	if n := proxy.Stats().Operations["TransactWriteItems"]; n != 1 {
		t.Errorf("the resend made %d writes, want 1 (the batch in doubt only; newer counts wait)", n)
	}
	if got, p := e.stored(t, base, base.Add(time.Minute)).Requests, e.rec.Pending().Requests; got != 1 || p != 2 {
		t.Errorf("stored %d, pending %d after the resend; want 1 (the same token is applied once) and 2", got, p)
	}
	if err := e.rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, p := e.stored(t, base, base.Add(time.Minute)).Requests, e.rec.Pending().Requests; got != 3 || p != 0 {
		t.Errorf("stored %d, pending %d after the final flush; want 3 and 0", got, p)
	}

	// Past the idempotency window a batch in doubt is dropped, not resent.
	e.logs.Reset()
	cut(true)
	e.fake.Advance(time.Second)
	e.request(ctx, observation(1))
	e.fake.Advance(time.Second)
	e.request(ctx, observation(1)) // flushes 1 into doubt
	cut(false)
	e.fake.Advance(metrics.ResendWithin)
	proxy.Reset()
	e.request(ctx, observation(1))
	if n := proxy.Stats().Operations["TransactWriteItems"]; n != 0 {
		t.Errorf("a batch in doubt past the window was written again (%d writes)", n)
	}
	if !strings.Contains(e.logs.String(), "metrics counts dropped") {
		t.Errorf("dropped batch not logged: %q", e.logs.String())
	}
	if p := e.rec.Pending().Requests; p != 2 {
		t.Errorf("pending = %d after the drop, want 2 (the requests since)", p)
	}
}
