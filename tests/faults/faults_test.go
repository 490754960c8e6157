// Package faults puts shared/dbproxy between real function instances
// (platform.New + <name>api.New, as each main builds them) and DynamoDB
// Local, with a small DB_TIMEOUT, and injects every fault kind on every route
// of every function (and the scheduled alert evaluation), under both
// RATE_LIMIT_FAIL_MODEs at once:
//
//   - sessions and auth fail closed: 401 or 503 SERVICE_UNAVAILABLE with
//     Retry-After, never a success that needed the store, never a 500, never
//     internal text;
//   - the limiter follows RATE_LIMIT_FAIL_MODE (open: a bounded per-instance
//     bucket; closed: 503);
//   - counting never fails a request (faults on the metrics table only leave
//     every answer of the functions that only count there as when healthy);
//   - every answer comes within DB_TIMEOUT + 1 s;
//   - once the fault clears, every route answers as before, without a restart.
//
// `make test` runs refuse, latency, hang, cut, throttle and server-error on
// every call and latency and cut on the metrics table alone; ZENITH_SOAK=1
// (`make soak`) adds throughput-exceeded, every kind on the metrics table, on
// every other table alone and on 30% of all calls.
package faults

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/tests/internal/stack"
)

// phase is one fault setting applied to every route at once.
type phase struct {
	name   string
	faults []dbproxy.Fault
	// total: every DynamoDB call fails (no table filter, no fraction).
	total bool
	// metricsOnly: only calls on the metrics table fail, so every answer of
	// a function that only counts there must be as when healthy.
	metricsOnly bool
}

func (p phase) throttles() bool {
	return slices.ContainsFunc(p.faults, func(f dbproxy.Fault) bool {
		return f.Kind == dbproxy.Throttle || f.Kind == dbproxy.ThroughputExceeded
	})
}

func fault(k dbproxy.Kind, fraction float64, tables ...string) dbproxy.Fault {
	f := dbproxy.Fault{Kind: k, Fraction: fraction, Tables: tables}
	if k == dbproxy.Latency {
		f.Delay = 3 * dbTimeout
	}
	return f
}

func phases(f *fixture) []phase {
	t := f.env.Tables
	var ps []phase
	// Every kind on every call (make test: one of each behaviour; throttle
	// and throughput take one path).
	total := []dbproxy.Kind{dbproxy.Refuse, dbproxy.Latency, dbproxy.Hang, dbproxy.Cut, dbproxy.Throttle, dbproxy.ServerError}
	if soak() {
		total = dbproxy.Kinds
	}
	for _, k := range total {
		// Every attempt cut: every answer is lost, so a request fails (503)
		// whatever its writes did.
		ps = append(ps, phase{name: string(k), faults: []dbproxy.Fault{fault(k, 0)}, total: true})
	}
	// The metrics table alone: counting never fails a request.
	metricsKinds := []dbproxy.Kind{dbproxy.Latency, dbproxy.Cut}
	if soak() {
		metricsKinds = []dbproxy.Kind{dbproxy.Latency, dbproxy.Hang, dbproxy.Cut, dbproxy.Throttle, dbproxy.ThroughputExceeded, dbproxy.ServerError}
	}
	for _, k := range metricsKinds {
		ps = append(ps, phase{name: string(k) + " on metrics", faults: []dbproxy.Fault{fault(k, 0, t.Metrics)}, metricsOnly: true})
	}
	// A part of every call, or one table: any answer of the healthy store or
	// of the fault, never a 500. make test runs the partial cut: writes
	// whose answer is lost after DynamoDB applied them (store.InDoubtError).
	if !soak() {
		ps = append(ps, phase{name: "cut 30%", faults: []dbproxy.Fault{fault(dbproxy.Cut, 0.3)}})
	}
	if soak() {
		others := []string{t.Users, t.Sessions, t.LoginAttempts, t.RateLimits, t.Alerts, t.LoadOverrides}
		for _, k := range []dbproxy.Kind{dbproxy.Latency, dbproxy.Hang, dbproxy.Cut, dbproxy.Throttle, dbproxy.ThroughputExceeded, dbproxy.ServerError} {
			for _, table := range others {
				ps = append(ps, phase{name: string(k) + " on " + table, faults: []dbproxy.Fault{fault(k, 0, table)}})
			}
			ps = append(ps, phase{name: string(k) + " 30%", faults: []dbproxy.Fault{fault(k, 0.3)}})
		}
	}
	return ps
}

// internalText are fragments of Go, SDK or AWS error text that must never reach a client.
var internalText = []string{"operation error", "dynamodb", "DynamoDB", "exception", "Exception", "context deadline",
	"connection", "127.0.0.1", "dial tcp", "goroutine", "panic", "InternalFailure", "api error", "https://", "http://"}

// checkCommon holds whatever the store does: no 5xx but a 503 with
// Retry-After, the route's envelope, no internal text.
func checkCommon(o outcome) []string {
	var bad []string
	res := o.res
	if res.Status >= 500 && res.Status != http.StatusServiceUnavailable {
		bad = append(bad, fmt.Sprintf("status %d: %s", res.Status, res.Raw))
	}
	if res.Status == http.StatusServiceUnavailable {
		if code := res.Str("code"); code != "SERVICE_UNAVAILABLE" && !strings.HasPrefix(o.req.Path, "/api/health") {
			bad = append(bad, fmt.Sprintf("503 with code %q (want SERVICE_UNAVAILABLE): %s", code, res.Raw))
		}
		if n, err := strconv.Atoi(res.Headers["Retry-After"]); err != nil || n < 1 {
			bad = append(bad, fmt.Sprintf("503 without a Retry-After of at least 1 s (%q)", res.Headers["Retry-After"]))
		}
	}
	if res.Status >= 400 {
		if err := checkEnvelope(o.req.Method, o.req.Path, res); err != nil {
			bad = append(bad, err.Error())
		}
		for _, frag := range internalText {
			if frag == "dynamodb" && strings.HasPrefix(o.req.Path, "/api/health") {
				continue // API.md's own field: checks.dynamodb "unreachable"
			}
			if strings.Contains(res.Raw, frag) {
				bad = append(bad, fmt.Sprintf("internal text %q in the answer: %s", frag, res.Raw))
			}
		}
	}
	return bad
}

// checkFault says what a route may answer under a phase. noise reports
// whether the route's instance saw a call on a healthy table exceed
// DB_TIMEOUT during the phase (a busy machine), which opens its breaker too.
func checkFault(p phase, o outcome, noise func(outcome) bool) []string {
	bad := checkCommon(o)
	if o.elapsed > answerBound {
		bad = append(bad, fmt.Sprintf("answered after %s (bound DB_TIMEOUT + 1 s = %s)", o.elapsed.Round(time.Millisecond), answerBound))
	}
	r, res := o.route, o.res
	switch {
	case p.metricsOnly && r.readsMetrics():
		if res.Status != r.healthy && res.Status != http.StatusServiceUnavailable {
			bad = append(bad, fmt.Sprintf("answered %d (want the healthy %d, or 503: this function reads the failing metrics table): %s", res.Status, r.healthy, res.Raw))
		}
	case p.metricsOnly:
		if res.Status != r.healthy && !(res.Status == http.StatusServiceUnavailable && noise(o)) {
			bad = append(bad, fmt.Sprintf("answered %d with only the metrics table failing (healthy: %d): counting must never fail a request: %s",
				res.Status, r.healthy, res.Raw))
		}
	case p.total && r.duringFault != nil:
		if !slices.Contains(r.duringFault, res.Status) {
			bad = append(bad, fmt.Sprintf("answered %d while every store call fails (want one of %v): %s", res.Status, r.duringFault, res.Raw))
		}
	case p.total && !r.storeFree:
		switch res.Status {
		case http.StatusServiceUnavailable, http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			if !p.throttles() || res.Str("code") != "RATE_LIMIT" {
				bad = append(bad, fmt.Sprintf("429 under %s: %s", p.name, res.Raw))
			}
		default:
			bad = append(bad, fmt.Sprintf("answered %d while every store call fails (want 401 or 503): %s", res.Status, res.Raw))
		}
	case p.total && !r.limited:
		// status=true: the instance's own (degraded) figures, never an error.
		if res.Status != r.healthy {
			bad = append(bad, fmt.Sprintf("answered %d (want %d from the instance's own figures): %s", res.Status, r.healthy, res.Raw))
		}
	case p.total:
		// Only the limiter's bucket is needed: RATE_LIMIT_FAIL_MODE decides.
		want := []int{r.healthy}
		if o.mode == "closed" {
			want = []int{http.StatusServiceUnavailable}
		}
		if p.throttles() {
			want = append(want, http.StatusTooManyRequests) // a throttled bucket refuses, whatever the mode
		}
		if !slices.Contains(want, res.Status) {
			bad = append(bad, fmt.Sprintf("RATE_LIMIT_FAIL_MODE=%s: answered %d (want one of %v): %s", o.mode, res.Status, want, res.Raw))
		}
	default:
		want := []int{r.healthy, http.StatusServiceUnavailable, http.StatusUnauthorized, http.StatusTooManyRequests}
		if !slices.Contains(want, res.Status) {
			bad = append(bad, fmt.Sprintf("answered %d (want the healthy %d, 401, 429 or 503): %s", res.Status, r.healthy, res.Raw))
		}
	}
	return bad
}

func checkHealthy(o outcome) []string {
	bad := checkCommon(o)
	if o.res.Status != o.route.healthy {
		return append(bad, fmt.Sprintf("answered %d, want %d: %s", o.res.Status, o.route.healthy, o.res.Raw))
	}
	if o.route.check != nil {
		if err := o.route.check(o.res); err != nil {
			bad = append(bad, err.Error())
		}
	}
	return bad
}

// report fails t for every departure check finds, with what the instance
// logged for a 5xx.
func report(t *testing.T, f *fixture, results []outcome, check func(outcome) []string) {
	t.Helper()
	for _, o := range results {
		if o.res.Body == nil {
			continue // send reported it
		}
		bad := check(o)
		for _, b := range bad {
			t.Errorf("%s [RATE_LIMIT_FAIL_MODE=%s]: %s", o.route.name, o.mode, b)
		}
		if len(bad) > 0 && o.res.Status >= 500 {
			for _, line := range f.requestLog(o.mode, o.res.Str("requestId")) {
				t.Logf("    log: %s", line)
			}
		}
	}
}

// TestStoreFaultsOnEveryRoute is the table of (fault × route) under both fail
// modes: each phase sets its fault, sends every route of every function once
// per mode, concurrently, and runs the scheduled evaluation; then clears the
// fault and checks that every route answers as when healthy again.
func TestStoreFaultsOnEveryRoute(t *testing.T) {
	f := newFixture(t)
	rs := routes(f)

	t.Run("healthy", func(t *testing.T) {
		results, took := recoverAll(t, f, prepareAll(t, f, rs), time.Now())
		report(t, f, results, checkHealthy)
		t.Logf("every route answered as when healthy after %s", took.Round(time.Millisecond))
		for mode, e := range scheduledUntilOK(f, time.Now()) {
			if e.err != nil {
				t.Errorf("scheduled evaluation [%s] on a healthy store: %v", mode, e.err)
			}
		}
	})
	for _, p := range phases(f) {
		t.Run(p.name, func(t *testing.T) {
			reqs := prepareAll(t, f, rs)
			mark := f.mark()
			before := f.proxy.Stats()
			for _, fa := range p.faults {
				if err := f.proxy.SetFault(fa); err != nil {
					t.Fatal(err)
				}
			}
			workers := 16
			if p.metricsOnly {
				// The other tables answer for real: few calls at once keep
				// DynamoDB Local's latency far below DB_TIMEOUT.
				workers = 8
			}
			results := send(t, f, reqs, workers)
			sched := scheduled(f)
			injected := f.proxy.Stats()
			if err := f.proxy.ClearFaults(); err != nil {
				t.Fatal(err)
			}
			cleared := time.Now()

			var hits int64
			for _, fa := range p.faults {
				hits += injected.Faults[fa.Kind] - before.Faults[fa.Kind]
			}
			if hits == 0 {
				t.Fatalf("the proxy injected no %s fault: the phase tested nothing", p.name)
			}
			noise := func(o outcome) bool {
				fn := "function=" + o.route.function()
				for _, line := range f.since(mark, o.mode) {
					if strings.Contains(line, fn) && strings.Contains(line, "context deadline exceeded") &&
						!strings.Contains(line, "metrics counter write failed") {
						t.Logf("%s [%s]: 503 while a call on a healthy table exceeded DB_TIMEOUT (a busy machine): %s", o.route.name, o.mode, line)
						return true
					}
				}
				return false
			}
			report(t, f, results, func(o outcome) []string { return checkFault(p, o, noise) })
			for mode, e := range sched {
				if e.elapsed > answerBound {
					t.Errorf("scheduled evaluation [%s] took %s (bound %s)", mode, e.elapsed.Round(time.Millisecond), answerBound)
				}
				if p.total && e.err == nil {
					t.Errorf("scheduled evaluation [%s] reported success while every store call failed", mode)
				}
			}

			// Recovery, without a restart: the breaker stays open for its cooldown.
			time.Sleep(store.BreakerCooldown + 100*time.Millisecond)
			recovered, took := recoverAll(t, f, prepareAll(t, f, rs), cleared)
			report(t, f, recovered, checkHealthy)
			for mode, e := range scheduledUntilOK(f, cleared) {
				if e.err != nil {
					t.Errorf("scheduled evaluation [%s] after the fault cleared: %v", mode, e.err)
				}
			}
			t.Logf("%d faults injected; every route answered as when healthy %s after the fault cleared",
				hits, took.Round(time.Millisecond))
		})
	}
}

// TestFailOpenBucketIsBounded: during an outage, RATE_LIMIT_FAIL_MODE=open
// admits a client through the instance's own bucket of the same policy, so
// that instance still admits at most C + ⌊d/T⌋; closed refuses every request
// with 503 and Retry-After.
func TestFailOpenBucketIsBounded(t *testing.T) {
	f := newFixture(t)
	if err := f.proxy.SetFault(dbproxy.Fault{Kind: dbproxy.Refuse}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.proxy.ClearFaults() }()
	const capacity = frontdoorRPM + frontdoorBurst // C
	period := time.Minute / frontdoorRPM           // T
	const sent = capacity + 8
	ip := sourceIP()
	for _, mode := range modes {
		start := time.Now()
		admitted := 0
		for range sent {
			res := f.stacks[mode].Do(t, apitest.Request{Method: "GET", Path: "/api/traffic-manager", SourceIP: ip})
			switch {
			case res.Status == http.StatusOK:
				admitted++
			case mode == "open" && res.Status == http.StatusTooManyRequests && res.Str("code") == "RATE_LIMIT":
			case mode == "closed" && res.Status == http.StatusServiceUnavailable && res.Headers["Retry-After"] != "":
			default:
				t.Errorf("[%s] front door during an outage: %d %s", mode, res.Status, res.Raw)
			}
		}
		d := time.Since(start)
		bound := capacity + int(d/period)
		switch mode {
		case "open":
			if admitted < capacity || admitted > bound {
				t.Errorf("fail open: admitted %d of %d in %s, want from C = %d to C + ⌊d/T⌋ = %d", admitted, sent, d, capacity, bound)
			}
		case "closed":
			if admitted != 0 {
				t.Errorf("fail closed: admitted %d during an outage", admitted)
			}
		}
		t.Logf("RATE_LIMIT_FAIL_MODE=%s: %d of %d admitted in %s during the outage", mode, admitted, sent, d.Round(time.Millisecond))
	}
}

// TestColdStartDuringOutage: every function started while DynamoDB cannot be
// reached starts, answers its contract's 503 SERVICE_UNAVAILABLE with
// Retry-After (API.md; issue 10, finding 7), and serves once the store is back.
func TestColdStartDuringOutage(t *testing.T) {
	f := newFixture(t)
	if err := f.proxy.SetFault(dbproxy.Fault{Kind: dbproxy.Refuse}); err != nil {
		t.Fatal(err)
	}
	cfg := f.env.Config
	cfg.DynamoDBEndpoint = f.proxy.URL()
	s, err := stack.New(t.Context(), cfg, instanceOptions(f.logs["open"])...)
	if err != nil {
		_ = f.proxy.ClearFaults()
		t.Fatalf("a function did not start during a store outage: %v", err)
	}
	probe := func() map[string]apitest.Response {
		return map[string]apitest.Response{
			"auth":            s.Do(t, apitest.Request{Method: "POST", Path: "/api/auth", Body: loginBody(t, adminUser, f.password[adminUser]), SourceIP: sourceIP()}),
			"session":         s.Do(t, bearerReq("GET", "/api/sessions", f.admin, "")),
			"traffic-manager": s.Do(t, bearerReq("POST", "/api/traffic-manager", f.admin, `{"simulateLoad":false}`)),
			"system-monitor":  s.Do(t, bearerReq("GET", "/api/system-monitor", f.admin, "")),
		}
	}
	for fn, res := range probe() {
		if res.Status != http.StatusServiceUnavailable || res.Str("code") != "SERVICE_UNAVAILABLE" || res.Headers["Retry-After"] == "" {
			t.Errorf("%s started during an outage answered %d %s (want 503 SERVICE_UNAVAILABLE with Retry-After)", fn, res.Status, res.Raw)
		}
	}
	if err := f.proxy.ClearFaults(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(store.BreakerCooldown + 100*time.Millisecond)
	for fn, res := range probe() {
		if res.Status != http.StatusOK {
			t.Errorf("%s after the outage: %d %s", fn, res.Status, res.Raw)
		}
	}
}
