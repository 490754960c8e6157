package load

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// base is far in the future so no ttl written here is near DynamoDB Local's
// real-time sweep.
var base = time.Date(2100, 1, 1, 12, 0, 0, 0, time.UTC)

func TestCompute(t *testing.T) {
	prev, cur := base.Add(-time.Minute), base
	// Requests counts every answered request; only the admitted ones (quota
	// spent and let through) load the system: the 200 + 100 others (free
	// probes, denials) show in RequestsLastMinute and nowhere else.
	minutes := []metrics.Minute{
		{Start: prev, Counts: metrics.Counts{Requests: 800, Admitted: 600, DurationMs: 60_000}},
		{Start: cur, Counts: metrics.Counts{Requests: 400, Admitted: 300, DurationMs: 15_000}},
		{Start: prev.Add(-time.Minute), Counts: metrics.Counts{Requests: 1_000_000, Admitted: 1_000_000}}, // outside the window: ignored
	}
	tests := []struct {
		name     string
		at       time.Time
		ov       OverrideTotals
		capacity int
		want     Snapshot
	}{
		{"start of minute: all of the previous", cur, OverrideTotals{}, 6000,
			Snapshot{RequestsLastMinute: 1200, AdmittedLastMinute: 900, MeasuredLoad: 0.15, CurrentLoad: 0.15, ActiveConnections: 1.25}},
		{"half way: half of the previous", cur.Add(30 * time.Second), OverrideTotals{}, 6000,
			Snapshot{RequestsLastMinute: 800, AdmittedLastMinute: 600, MeasuredLoad: 0.1, CurrentLoad: 0.1, ActiveConnections: 0.75}},
		{"overrides add and clamp", cur.Add(30 * time.Second), OverrideTotals{Load: 0.95, Connections: 50_000, Count: 2}, 6000,
			Snapshot{RequestsLastMinute: 800, AdmittedLastMinute: 600, MeasuredLoad: 0.1, OverrideLoad: 0.95, CurrentLoad: 1, ActiveConnections: 50_000, OverrideConnections: 50_000, SimulateLoad: true}},
		{"over capacity clamps to 1", cur, OverrideTotals{}, 100,
			Snapshot{RequestsLastMinute: 1200, AdmittedLastMinute: 900, MeasuredLoad: 1, CurrentLoad: 1, ActiveConnections: 1.25}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := compute(tc.at, minutes, tc.ov, tc.capacity)
			tc.want.At = tc.at
			if got.RequestsLastMinute != tc.want.RequestsLastMinute || got.AdmittedLastMinute != tc.want.AdmittedLastMinute ||
				!near(got.MeasuredLoad, tc.want.MeasuredLoad) ||
				!near(got.CurrentLoad, tc.want.CurrentLoad) || !near(got.OverrideLoad, tc.want.OverrideLoad) ||
				!near(got.ActiveConnections, tc.want.ActiveConnections) || got.OverrideConnections != tc.want.OverrideConnections ||
				got.SimulateLoad != tc.want.SimulateLoad || !got.At.Equal(tc.at) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	s := Snapshot{MeasuredLoad: 0.1, CurrentLoad: 0.9}
	if s.SheddingLoad(false) != 0.1 || s.SheddingLoad(true) != 0.9 {
		t.Error("SheddingLoad must ignore overrides unless simulation is enabled")
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestOverridesExpireOnRead(t *testing.T) {
	env := dynamotest.New(t, "traffic-manager", nil)
	fake := clock.NewFake(base)
	o := NewOverrides(env.Client, env.Tables.LoadOverrides, 300*time.Second, fake)
	ctx := context.Background()
	if _, err := o.Add(ctx, 100, 0.25); err != nil {
		t.Fatal(err)
	}
	fake.Advance(100 * time.Second)
	if _, err := o.Add(ctx, 30000, 0.5); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Add(ctx, 30000, 0.5); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Add(ctx, -1, 0.5); err == nil {
		t.Error("negative connections accepted")
	}
	got, err := o.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got != (OverrideTotals{Load: 1, Connections: MaxOverrideConnections, Count: 3}) {
		t.Errorf("three overrides = %+v, want clamped sums", got)
	}
	// The first expires at +300 s; its item is still in the table (its ttl is decades away
	// from the real clock), yet it no longer counts.
	fake.Set(base.Add(300 * time.Second))
	if got, _ = o.Current(ctx); got.Count != 2 || got.Connections != 50000 || !near(got.Load, 1) {
		t.Errorf("after the first expired = %+v", got)
	}
	fake.Set(base.Add(400*time.Second - time.Millisecond))
	if got, _ = o.Current(ctx); got.Count != 2 {
		t.Errorf("1 ms before the others expire = %+v", got)
	}
	fake.Set(base.Add(400 * time.Second))
	if got, _ = o.Current(ctx); got != (OverrideTotals{}) {
		t.Errorf("all expired = %+v", got)
	}
}

func TestMeterCachesTwoSeconds(t *testing.T) {
	var calls store.CallCounter
	env := dynamotest.New(t, "traffic-manager", map[string]string{"METRIC_SHARDS": "2"}, calls.Option())
	fake := clock.NewFake(base.Add(15 * time.Second))
	counters := metrics.NewCounters(env.Client, env.Tables.Metrics, 2, fake)
	o := NewOverrides(env.Client, env.Tables.LoadOverrides, time.Minute, fake)
	m := NewMeter(counters, o, 600, fake)
	ctx := context.Background()
	if err := counters.Add(ctx, fake.Now(), metrics.Counts{Requests: 60, Admitted: 60, DurationMs: 6000}); err != nil {
		t.Fatal(err)
	}
	calls.Reset()
	s, err := m.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.RequestsLastMinute != 60 || s.AdmittedLastMinute != 60 || !near(s.MeasuredLoad, 0.1) || !near(s.ActiveConnections, 0.1) {
		t.Errorf("snapshot = %+v", s)
	}
	if n := calls.Count("Query"); n != 3 {
		t.Errorf("%d queries, want one per shard (2) plus one for overrides", n)
	}
	if err := counters.Add(ctx, fake.Now(), metrics.Counts{Requests: 60, Admitted: 60}); err != nil {
		t.Fatal(err)
	}
	fake.Advance(CacheFor - time.Millisecond)
	if s2, _ := m.Snapshot(ctx); s2 != s {
		t.Errorf("within 2 s the snapshot changed: %+v", s2)
	}
	fake.Advance(time.Millisecond)
	if s3, _ := m.Snapshot(ctx); s3.RequestsLastMinute != 120 {
		t.Errorf("after 2 s = %+v, want the new count", s3)
	}
	m.Invalidate()
	calls.Reset()
	if _, err := m.Snapshot(ctx); err != nil || calls.Count("Query") != 3 {
		t.Errorf("Invalidate did not force a read: %v %v", err, calls.Snapshot())
	}
}

type failing struct{}

func (failing) Minutes(context.Context, time.Time, time.Time) ([]metrics.Minute, error) {
	return nil, errors.New("boom")
}

func TestMeterErrorKeepsLast(t *testing.T) {
	m := NewMeterFrom(failing{}, nil, 10, clock.NewFake(base))
	if _, err := m.Snapshot(context.Background()); err == nil {
		t.Error("error swallowed")
	}
	if _, ok := m.Last(); ok {
		t.Error("Last reported a snapshot that never was")
	}
}

// With the store unreachable, a failed refresh is remembered for CacheFor
// like a successful one: every Snapshot inside the window answers the same
// error without a DynamoDB call (counted by the SDK middleware), so an outage
// costs one refresh per instance per CacheFor, not one per request. Last keeps
// the last success, and Invalidate forces a new read.
func TestMeterCachesAFailedRefresh(t *testing.T) {
	env := dynamotest.New(t, "traffic-manager", map[string]string{"METRIC_SHARDS": "2"})
	fake := clock.NewFake(base.Add(15 * time.Second))
	ctx := context.Background()
	if err := metrics.NewCounters(env.Client, env.Tables.Metrics, 2, fake).Add(ctx, fake.Now(), metrics.Counts{Requests: 6, Admitted: 6}); err != nil {
		t.Fatal(err)
	}
	var calls store.CallCounter
	up := env.NewClient(t, calls.Option())
	env.Config.DynamoDBEndpoint = apitest.ClosedURL(t)
	down := env.NewClient(t, calls.Option(), func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 })

	// One meter whose client can be switched between the live store and a dead port.
	var dead atomic.Bool
	pick := func() *dynamodb.Client {
		if dead.Load() {
			return down
		}
		return up
	}
	m := NewMeterFrom(minutesVia{func() MinuteReader { return metrics.NewCounters(pick(), env.Tables.Metrics, 2, fake) }},
		overridesVia{func() OverrideReader { return NewOverrides(pick(), env.Tables.LoadOverrides, time.Minute, fake) }}, 60, fake)
	good, err := m.Snapshot(ctx)
	if err != nil || good.AdmittedLastMinute != 6 {
		t.Fatalf("live snapshot = %+v, %v", good, err)
	}
	dead.Store(true)
	steps := []struct {
		name    string
		advance time.Duration
		calls   bool // whether this Snapshot may call DynamoDB
	}{
		{"cache expired: one refresh, which fails", CacheFor, true},
		{"same instant: the failure is cached", 0, false},
		{"again", 0, false},
		{"just inside the window", CacheFor - time.Millisecond, false},
		{"window over: one new refresh", time.Millisecond, true},
		{"its failure is cached in turn", time.Second, false},
	}
	for _, st := range steps {
		fake.Advance(st.advance)
		calls.Reset()
		_, err := m.Snapshot(ctx)
		if err == nil {
			t.Fatalf("%s: no error with the store down", st.name)
		}
		if n := calls.Total(); (n > 0) != st.calls {
			t.Errorf("%s: %d DynamoDB calls (%v), want calls=%v", st.name, n, calls.Snapshot(), st.calls)
		}
		if last, ok := m.Last(); !ok || last != good {
			t.Errorf("%s: Last = %+v %v, want the last success", st.name, last, ok)
		}
	}
	// The store is back and this instance wrote an override: Invalidate drops
	// the cached failure at once.
	dead.Store(false)
	m.Invalidate()
	calls.Reset()
	if s, err := m.Snapshot(ctx); err != nil || calls.Total() == 0 || !s.At.Equal(fake.Now()) {
		t.Errorf("after Invalidate: %+v %v with %d calls, want a fresh read", s, err, calls.Total())
	}
}

// minutesVia and overridesVia build their reader on every call, so a test
// can switch the client under one meter.
type minutesVia struct{ r func() MinuteReader }

func (v minutesVia) Minutes(ctx context.Context, from, to time.Time) ([]metrics.Minute, error) {
	return v.r().Minutes(ctx, from, to)
}

type overridesVia struct{ r func() OverrideReader }

func (v overridesVia) Current(ctx context.Context) (OverrideTotals, error) { return v.r().Current(ctx) }

// barrier readers: each waits until the other has started, so a meter that
// reads one after the other never gets past the first (the guard context
// then ends the wait and the test fails); one that reads both at once does.
type barrier struct {
	minutesIn, overridesIn chan struct{}
}

func (b barrier) Minutes(ctx context.Context, _, _ time.Time) ([]metrics.Minute, error) {
	close(b.minutesIn)
	select {
	case <-b.overridesIn:
		return []metrics.Minute{{Start: base, Counts: metrics.Counts{Requests: 3, Admitted: 3}}}, nil
	case <-ctx.Done():
		return nil, errors.New("the overrides were not read while the counters were")
	}
}

func (b barrier) Current(ctx context.Context) (OverrideTotals, error) {
	close(b.overridesIn)
	select {
	case <-b.minutesIn:
		return OverrideTotals{Load: 0.5, Count: 1}, nil
	case <-ctx.Done():
		return OverrideTotals{}, errors.New("the counters were not read while the overrides were")
	}
}

type failingOverrides struct{}

func (failingOverrides) Current(context.Context) (OverrideTotals, error) {
	return OverrideTotals{}, errors.New("overrides table gone")
}

// blockingMinutes returns only when its context ends.
type blockingMinutes struct{ cancelled *atomic.Bool }

func (b blockingMinutes) Minutes(ctx context.Context, _, _ time.Time) ([]metrics.Minute, error) {
	<-ctx.Done()
	b.cancelled.Store(true)
	return nil, ctx.Err()
}

// The counters and the overrides are read at the same time, and the first
// failure cancels the other read and is the error reported.
func TestMeterReadsCountersAndOverridesConcurrently(t *testing.T) {
	// Only a guard against a deadlock of the sequential reads; a passing run
	// never waits on it.
	guard, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := barrier{minutesIn: make(chan struct{}), overridesIn: make(chan struct{})}
	s, err := NewMeterFrom(b, b, 10, clock.NewFake(base)).Snapshot(guard)
	if err != nil {
		t.Fatalf("reads were not concurrent: %v", err)
	}
	if s.AdmittedLastMinute != 3 || !near(s.MeasuredLoad, 0.3) || !near(s.CurrentLoad, 0.8) {
		t.Errorf("snapshot = %+v", s)
	}

	var cancelled atomic.Bool
	_, err = NewMeterFrom(blockingMinutes{&cancelled}, failingOverrides{}, 10, clock.NewFake(base)).Snapshot(guard)
	if err == nil || !strings.Contains(err.Error(), "read load overrides: overrides table gone") || !cancelled.Load() {
		t.Errorf("err = %v (counter read cancelled: %v), want the overrides' failure, the other read cancelled", err, cancelled.Load())
	}
}
