package metrics_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

func TestPeakIsRaisedOnlyByConditionalUpdates(t *testing.T) {
	var calls store.CallCounter
	env := dynamotest.New(t, "system-monitor", nil, calls.Option())
	fake := clock.NewFake(base.Add(10 * time.Minute))
	p := metrics.NewPeaks(env.Client, env.Tables.Metrics, fake)
	ctx := context.Background()
	observe := func(load float64) float64 {
		t.Helper()
		v, err := p.Observe(ctx, load)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	steps := []struct {
		advance time.Duration
		load    float64
		want    float64
	}{
		{0, 0.5, 0.5},
		{time.Minute, 0.3, 0.5},    // lower: condition fails, stored peak returned
		{time.Minute, 0.7, 0.7},    // higher: raised
		{time.Hour, 0.1, 0.7},      // next hour: the 24 h peak still counts the earlier hour
		{23 * time.Hour, 0.2, 0.2}, // the 0.7 hour has left the 24 h window
		{0, -1, 0.2},               // nonsense input is treated as zero
	}
	for i, s := range steps {
		fake.Advance(s.advance)
		calls.Reset()
		if got := observe(s.load); got != s.want {
			t.Errorf("step %d: peak = %v, want %v", i, got, s.want)
		}
		if calls.Count("UpdateItem") != 1 || calls.Count("Query") != 1 || calls.Total() != 2 {
			t.Errorf("step %d: calls = %v, want one conditional UpdateItem and one Query", i, calls.Snapshot())
		}
	}

	// Concurrent observers never lower the peak: the highest wins.
	fake.Advance(2 * time.Hour)
	var wg sync.WaitGroup
	for i := 1; i <= 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Observe(ctx, float64(i)/20); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := observe(0); got != 0.5 {
		t.Errorf("peak after concurrent observers = %v, want 0.5", got)
	}
}
