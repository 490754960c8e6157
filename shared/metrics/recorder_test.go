package metrics_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

var base = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// emulatorTimeout widens the counter write's bound for DynamoDB Local on a
// loaded machine (production: min(DB_TIMEOUT, 1 s)).
const emulatorTimeout = 30 * time.Second

// METRICS_FLUSH_INTERVAL=0: every request writes its own counts, synchronously in Record.
func TestRecorderOneWritePerRequestAndExactCounts(t *testing.T) {
	var calls store.CallCounter
	env := dynamotest.New(t, "auth", map[string]string{"METRIC_SHARDS": "4", "SLOW_QUERY_MS": "100", "METRICS_FLUSH_INTERVAL": "0"}, calls.Option())
	fake := clock.NewFake(base)
	var out bytes.Buffer
	rec := metrics.NewRecorder(withTimeout(platform.RecorderSettings(env.Config), emulatorTimeout), env.Client, fake, &out, nil)
	ctx := context.Background()

	obs := []struct {
		status   int
		code     string
		admitted bool
		d        time.Duration
		minute   int
	}{
		{200, "", true, 20 * time.Millisecond, 0}, {200, "", false, 150 * time.Millisecond, 0}, {404, "NOT_FOUND", true, 5 * time.Millisecond, 0},
		{429, "RATE_LIMIT", false, 0, 0}, {500, "INTERNAL_ERROR", true, 300 * time.Millisecond, 0}, {503, "SERVICE_UNAVAILABLE", true, 100 * time.Millisecond, 0},
		{201, "", true, 101 * time.Millisecond, 1}, {429, "RATE_LIMIT", false, time.Millisecond, 1},
		{503, "RATE_LIMIT", false, 0, 1}, // RATE_LIMIT_STATUS=503: throttled, not failed
	}
	calls.Reset()
	for i, o := range obs {
		rec.Start(ctx)() // nothing to flush: the write is Record's
		if n := calls.Total(); n != i {
			t.Fatalf("request %d: Start made calls (%d so far)", i, n)
		}
		rec.Record(ctx, metrics.Observation{
			Function: "auth", Route: "/api/auth", Method: "POST", Status: o.status, Code: o.code, Admitted: o.admitted,
			Throttled: o.code == "RATE_LIMIT", // as the request layer sets it
			Duration:  o.d, At: base.Add(time.Duration(o.minute)*time.Minute + 30*time.Second),
		})
		if n := calls.Count("TransactWriteItems"); n != i+1 {
			t.Fatalf("request %d: %d counter writes when Record returned, want %d (written synchronously)", i, n, i+1)
		}
	}
	if got := calls.Snapshot(); calls.Total() != len(obs) || got["TransactWriteItems"] != len(obs) {
		t.Errorf("calls = %v, want exactly one counter write per request (%d)", got, len(obs))
	}
	if ls := lines(t, out.Bytes()); len(ls) != len(obs) {
		t.Errorf("EMF lines = %d, want %d", len(ls), len(obs))
	} else {
		for _, l := range ls {
			checkEMF(t, l)
		}
	}

	c := metrics.NewCounters(env.Client, env.Tables.Metrics, 4, fake)
	ms, err := c.Minutes(ctx, base, base.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := []metrics.Counts{
		{Requests: 6, Admitted: 4, Errors5xx: 2, Throttled: 1, Slow: 2, DurationMs: 575},
		{Requests: 3, Admitted: 1, Throttled: 2, Slow: 1, DurationMs: 102},
	}
	if len(ms) != 2 {
		t.Fatalf("minutes = %+v", ms)
	}
	for i := range want {
		if ms[i].Counts != want[i] || !ms[i].Start.Equal(base.Add(time.Duration(i)*time.Minute)) {
			t.Errorf("minute %d = %+v, want %+v", i, ms[i], want[i])
		}
	}

	// Failed logins: one line and one counter add; other events: a line only.
	out.Reset()
	calls.Reset()
	fake.Set(base.Add(10 * time.Second))
	rec.CountEvent(ctx, metrics.EventFailedLogin)
	rec.CountEvent(ctx, "csrf_rejected")
	if calls.Count("TransactWriteItems") != 1 || len(lines(t, out.Bytes())) != 2 {
		t.Errorf("events: calls %v, lines %d", calls.Snapshot(), len(lines(t, out.Bytes())))
	}
	sum, err := c.Sum(ctx, base, base.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if sum.FailedLogins != 1 || sum.Requests != 6 {
		t.Errorf("after events: %+v", sum)
	}
}

func TestRecorderRealtimeOffWritesOnlyEMF(t *testing.T) {
	var calls store.CallCounter
	env := dynamotest.New(t, "session", map[string]string{"METRICS_REALTIME": "off"}, calls.Option())
	// (whatever METRICS_FLUSH_INTERVAL says: the default 1 s here)
	fake := clock.NewFake(base)
	var out bytes.Buffer
	rec := metrics.NewRecorder(withTimeout(platform.RecorderSettings(env.Config), emulatorTimeout), env.Client, fake, &out, nil)
	if rec.Counters() != nil {
		t.Fatal("realtime off must not have counters")
	}
	calls.Reset()
	for i := 0; i < 5; i++ {
		rec.Start(context.Background())()
		rec.Record(context.Background(), metrics.Observation{Function: "session", Route: "/api/sessions", Method: "GET", Status: 200, At: base})
		fake.Advance(time.Second)
	}
	if err := rec.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls.Total() != 0 {
		t.Errorf("realtime off made calls %v", calls.Snapshot())
	}
	if n := len(lines(t, out.Bytes())); n != 5 {
		t.Errorf("lines = %d", n)
	}
	// The failed-logins rule keeps its input.
	rec.CountEvent(context.Background(), metrics.EventFailedLogin)
	if calls.Count("TransactWriteItems") != 1 {
		t.Errorf("failed login with realtime off: calls %v", calls.Snapshot())
	}
}

func TestRecorderNeverFailsWhenTheTableIsDown(t *testing.T) {
	cfg, err := config.Load("auth", func(k string) string {
		return map[string]string{"DYNAMODB_ENDPOINT": "http://127.0.0.1:1", "DB_TIMEOUT": "200", "METRICS_FLUSH_INTERVAL": "0"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	ac, err := store.LoadAWS(context.Background(), cfg.Region, cfg.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	var out, logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	rec := metrics.NewRecorder(platform.RecorderSettings(cfg), store.NewDynamoDB(ac, cfg.DynamoDBEndpoint, cfg.DBTimeout), clock.NewFake(base), &out, logger)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // even a cancelled request context is recorded (and bounded on its own)
	rec.Record(ctx, metrics.Observation{Function: "auth", Route: "/api/auth", Method: "POST", Status: 200, At: base})
	if len(lines(t, out.Bytes())) != 1 {
		t.Error("the EMF line must be written whatever the table does")
	}
	if !strings.Contains(logs.String(), "metrics counter write failed") {
		t.Errorf("failure not logged: %s", logs.String())
	}
}

func TestDelta(t *testing.T) {
	slow := 1000 * time.Millisecond
	tests := []struct {
		status   int
		code     string
		admitted bool
		d        time.Duration
		want     metrics.Counts
	}{
		{200, "", true, slow, metrics.Counts{Requests: 1, Admitted: 1, DurationMs: 1000}},
		{200, "", true, slow + time.Millisecond, metrics.Counts{Requests: 1, Admitted: 1, Slow: 1, DurationMs: 1001}},
		{200, "", false, 0, metrics.Counts{Requests: 1}}, // a free probe (status=true)
		{400, "VALIDATION_ERROR", true, 0, metrics.Counts{Requests: 1, Admitted: 1}},
		{429, "RATE_LIMIT", false, 0, metrics.Counts{Requests: 1, Throttled: 1}},
		{429, "", false, 0, metrics.Counts{Requests: 1, Throttled: 1}},
		{499, "", true, 0, metrics.Counts{Requests: 1, Admitted: 1}},
		{500, "INTERNAL_ERROR", true, 0, metrics.Counts{Requests: 1, Admitted: 1, Errors5xx: 1}},
		{503, "SERVICE_UNAVAILABLE", true, 0, metrics.Counts{Requests: 1, Admitted: 1, Errors5xx: 1}},
		{503, "SYS_OVERLOAD", true, 0, metrics.Counts{Requests: 1, Admitted: 1, Errors5xx: 1}},
		// RATE_LIMIT_STATUS=503: a limiter denial answered 503 is throttled, not failed.
		{503, "RATE_LIMIT", false, 0, metrics.Counts{Requests: 1, Throttled: 1}},
		{200, "", true, -time.Second, metrics.Counts{Requests: 1, Admitted: 1}},
	}
	for _, tt := range tests {
		o := metrics.Observation{Status: tt.status, Code: tt.code, Throttled: tt.code == "RATE_LIMIT", Admitted: tt.admitted, Duration: tt.d}
		if got := metrics.Delta(o, slow); got != tt.want {
			t.Errorf("Delta(%d %q admitted=%v, %v) = %+v, want %+v", tt.status, tt.code, tt.admitted, tt.d, got, tt.want)
		}
	}
}

// withTimeout widens the counter write's bound for a loaded emulator.
func withTimeout(s metrics.Settings, d time.Duration) metrics.Settings {
	s.WriteTimeout = d
	return s
}
