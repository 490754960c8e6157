package faults

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// The focused reproductions of what the fault table found: each is the
// smallest sequence of requests that showed one bug (each failed before its
// fix: store.IsUnavailable on a 5xx past the retry quota, store.WithoutTrip
// for the recorder, the counters' idempotent batches and the at-most-once
// single-item writes).

// TestServerErrorsAnswer503: while DynamoDB answers 500 InternalFailure to
// every call, every request that needs the store answers 503
// SERVICE_UNAVAILABLE, the first one as the hundredth (once the SDK's retry
// quota is spent, its error no longer wraps a MaxAttemptsError).
func TestServerErrorsAnswer503(t *testing.T) {
	f := newFixture(t)
	if err := f.proxy.SetFault(dbproxy.Fault{Kind: dbproxy.ServerError}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.proxy.ClearFaults() }()
	s := f.stacks["open"]
	statuses := map[int]int{}
	for range 60 {
		res := s.Do(t, bearerReq("GET", "/api/auth", f.staff, ""))
		statuses[res.Status]++
		if res.Status != http.StatusServiceUnavailable {
			for _, line := range f.requestLog("open", res.Str("requestId")) {
				t.Logf("log: %s", line)
			}
		}
	}
	if statuses[http.StatusServiceUnavailable] != 60 {
		t.Errorf("60 validations while DynamoDB answers 500: statuses %v, want 60 × 503", statuses)
	}
}

// TestCounterFailureNeverFailsRequests: while only the metrics table's calls
// are cut mid-answer, requests of a function that only counts there (auth)
// answer as when healthy, one after the other on one instance.
func TestCounterFailureNeverFailsRequests(t *testing.T) {
	f := newFixture(t)
	if err := f.proxy.SetFault(dbproxy.Fault{Kind: dbproxy.Cut, Tables: []string{f.env.Tables.Metrics}}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.proxy.ClearFaults() }()
	s := f.stacks["open"]
	// Over several seconds: counts may be flushed at most once per
	// METRICS_FLUSH_INTERVAL, alongside a request.
	failed := 0
	const n = 40
	for i := range n {
		res := s.Do(t, bearerReq("GET", "/api/auth", f.staff, ""))
		if res.Status != http.StatusOK {
			failed++
			t.Logf("request %d: %d %s", i, res.Status, res.Raw)
			for _, line := range f.requestLog("open", res.Str("requestId")) {
				t.Logf("log: %s", line)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if cut := f.proxy.Stats().Faults[dbproxy.Cut]; cut == 0 {
		t.Fatal("no counter write was cut: the test tested nothing")
	}
	if failed > 0 {
		t.Errorf("%d of %d validations failed while only counter writes were cut", failed, n)
	}
}

// TestCountersNeverCountTwice: when the answer to a counter write is lost
// (the connection cut after DynamoDB applied it), the request is still
// counted at most once: the minute counters never exceed the requests sent.
func TestCountersNeverCountTwice(t *testing.T) {
	f := newFixture(t)
	counters := metrics.NewCounters(f.env.Client, f.env.Tables.Metrics, f.env.Config.MetricShards, clock.System{})
	from := time.Now().Truncate(time.Minute)
	sum := func() int64 {
		c, err := counters.Sum(context.Background(), from, time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		return c.Requests
	}
	// Let the fixture's own requests settle, then count only what follows.
	time.Sleep(store.BreakerCooldown)
	base := sum()
	if err := f.proxy.SetFault(dbproxy.Fault{Kind: dbproxy.Cut, Tables: []string{f.env.Tables.Metrics}, Operations: []string{"TransactWriteItems"}, Fraction: 0.5}); err != nil {
		t.Fatal(err)
	}
	const sent = 12
	s := f.stacks["open"]
	for range sent {
		s.Do(t, apitest.Request{Method: "GET", Path: "/api/traffic-manager", Query: map[string]string{"status": "true"}, SourceIP: sourceIP()})
		time.Sleep(store.BreakerCooldown) // a cut opens the breaker; each write starts closed
	}
	cut := f.proxy.Stats().Faults[dbproxy.Cut]
	if err := f.proxy.ClearFaults(); err != nil {
		t.Fatal(err)
	}
	if cut == 0 {
		t.Fatal("no counter write was cut: the test tested nothing")
	}
	got := sum() - base
	t.Logf("%d requests sent, %d counted, %d counter writes cut", sent, got, cut)
	if got > sent {
		t.Errorf("%d requests counted for %d sent: a counter write whose answer was lost was applied again", got, sent)
	}
}

// TestLostSessionWriteIsNotAnInternalError: when the answer to a login's
// session write is lost (the connection cut after DynamoDB applied it), the
// login answers 200 or 503, never 500.
func TestLostSessionWriteIsNotAnInternalError(t *testing.T) {
	f := newFixture(t)
	if err := f.proxy.SetFault(dbproxy.Fault{Kind: dbproxy.Cut, Tables: []string{f.env.Tables.Sessions}, Operations: []string{"PutItem"}, Fraction: 0.5}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.proxy.ClearFaults() }()
	s := f.stacks["open"]
	statuses := map[int]int{}
	for range 12 {
		res := s.Do(t, apitest.Request{Method: "POST", Path: "/api/auth", Body: loginBody(t, staffUser, f.password[staffUser]), SourceIP: sourceIP()})
		statuses[res.Status]++
		if res.Status >= 500 && res.Status != http.StatusServiceUnavailable {
			t.Errorf("login whose session write lost its answer: %d %s", res.Status, res.Raw)
			for _, line := range f.requestLog("open", res.Str("requestId")) {
				t.Logf("log: %s", line)
			}
		}
		time.Sleep(store.BreakerCooldown) // a cut opens the breaker; each login starts closed
	}
	t.Logf("statuses %v, %d session writes cut", statuses, f.proxy.Stats().Faults[dbproxy.Cut])
}
