package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

func TestCountersSumAcrossShardsAndMinutes(t *testing.T) {
	var calls store.CallCounter
	env := dynamotest.New(t, "test", map[string]string{"METRIC_SHARDS": "4"}, calls.Option())
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	c := metrics.NewCounters(env.Client, env.Tables.Metrics, 4, clock.NewFake(base))
	ctx := context.Background()
	// 40 adds in minute 0 (spread over shards at random), 3 in minute 2.
	for i := 0; i < 40; i++ {
		if err := c.Add(ctx, base.Add(time.Duration(i)*time.Second), metrics.Counts{Requests: 1, DurationMs: 10, Errors5xx: int64(i % 2)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		if err := c.Add(ctx, base.Add(2*time.Minute+time.Second), metrics.Counts{Requests: 1, Throttled: 1}); err != nil {
			t.Fatal(err)
		}
	}
	calls.Reset()
	ms, err := c.Minutes(ctx, base, base.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got := calls.Count("Query"); got != 4 {
		t.Errorf("queries = %d, want one per shard (4)", got)
	}
	if len(ms) != 2 {
		t.Fatalf("minutes = %+v, want 2", ms)
	}
	if ms[0].Requests != 40 || ms[0].Errors5xx != 20 || ms[0].DurationMs != 400 || !ms[0].Start.Equal(base) {
		t.Errorf("minute 0 = %+v", ms[0])
	}
	if ms[1].Requests != 3 || ms[1].Throttled != 3 || !ms[1].Start.Equal(base.Add(2*time.Minute)) {
		t.Errorf("minute 2 = %+v", ms[1])
	}
	sum, err := c.Sum(ctx, base.Add(time.Minute), base.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Requests != 3 {
		t.Errorf("sum of minutes 1..2 = %+v, want 3 requests", sum)
	}
}
