package load

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

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
	minutes := []metrics.Minute{
		{Start: prev, Counts: metrics.Counts{Requests: 600, DurationMs: 60_000}},
		{Start: cur, Counts: metrics.Counts{Requests: 300, DurationMs: 15_000}},
		{Start: prev.Add(-time.Minute), Counts: metrics.Counts{Requests: 1_000_000}}, // outside the window: ignored
	}
	tests := []struct {
		name     string
		at       time.Time
		ov       OverrideTotals
		capacity int
		want     Snapshot
	}{
		{"start of minute: all of the previous", cur, OverrideTotals{}, 6000,
			Snapshot{RequestsLastMinute: 900, MeasuredLoad: 0.15, CurrentLoad: 0.15, ActiveConnections: 1.25}},
		{"half way: half of the previous", cur.Add(30 * time.Second), OverrideTotals{}, 6000,
			Snapshot{RequestsLastMinute: 600, MeasuredLoad: 0.1, CurrentLoad: 0.1, ActiveConnections: 0.75}},
		{"overrides add and clamp", cur.Add(30 * time.Second), OverrideTotals{Load: 0.95, Connections: 50_000, Count: 2}, 6000,
			Snapshot{RequestsLastMinute: 600, MeasuredLoad: 0.1, OverrideLoad: 0.95, CurrentLoad: 1, ActiveConnections: 50_000, OverrideConnections: 50_000, SimulateLoad: true}},
		{"over capacity clamps to 1", cur, OverrideTotals{}, 100,
			Snapshot{RequestsLastMinute: 900, MeasuredLoad: 1, CurrentLoad: 1, ActiveConnections: 1.25}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := compute(tc.at, minutes, tc.ov, tc.capacity)
			tc.want.At = tc.at
			if got.RequestsLastMinute != tc.want.RequestsLastMinute || !near(got.MeasuredLoad, tc.want.MeasuredLoad) ||
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
	if err := counters.Add(ctx, fake.Now(), metrics.Counts{Requests: 60, DurationMs: 6000}); err != nil {
		t.Fatal(err)
	}
	calls.Reset()
	s, err := m.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.RequestsLastMinute != 60 || !near(s.MeasuredLoad, 0.1) || !near(s.ActiveConnections, 0.1) {
		t.Errorf("snapshot = %+v", s)
	}
	if n := calls.Count("Query"); n != 3 {
		t.Errorf("%d queries, want one per shard (2) plus one for overrides", n)
	}
	if err := counters.Add(ctx, fake.Now(), metrics.Counts{Requests: 60}); err != nil {
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
