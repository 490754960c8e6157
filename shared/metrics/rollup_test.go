package metrics_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// seedMinutes writes one counter item per (shard, minute) with every counter
// set, as the recorder leaves them, and returns the per-minute sums over
// shards. rnd decides the values; a minute is skipped with probability skip.
func seedMinutes(t testing.TB, db *dynamodb.Client, table string, shards int, from time.Time, n int, skip float64, rnd *rand.Rand) map[int64]metrics.Counts {
	t.Helper()
	sums := map[int64]metrics.Counts{}
	var reqs []types.WriteRequest
	for i := 0; i < n; i++ {
		m := from.Add(time.Duration(i) * time.Minute)
		for s := 0; s < shards; s++ {
			if rnd.Float64() < skip {
				continue
			}
			r := 1 + rnd.Int64N(1500)
			c := metrics.Counts{
				Requests: r, Admitted: rnd.Int64N(r + 1), Errors5xx: rnd.Int64N(r/20 + 1), Throttled: rnd.Int64N(r/10 + 1),
				Slow: rnd.Int64N(r/50 + 1), DurationMs: r * (1 + rnd.Int64N(300)), FailedLogins: rnd.Int64N(3),
			}
			sums[m.Unix()] = sums[m.Unix()].Plus(c)
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("rt#%d", s)}, "sk": &types.AttributeValueMemberS{Value: metrics.MinuteKey(m)},
				"requests": store.Num(c.Requests), "admitted": store.Num(c.Admitted), "errors5xx": store.Num(c.Errors5xx),
				"throttled": store.Num(c.Throttled), "slow": store.Num(c.Slow), "durationMs": store.Num(c.DurationMs),
				"failedLogins": store.Num(c.FailedLogins), "ttl": store.Num(m.Add(metrics.CounterTTL).Unix()),
			}}})
		}
	}
	dynamotest.Seed(t, db, table, reqs, 4)
	return sums
}

// rawWindow is the reference: the minute counters of [from, to) read the old
// way (every minute item), one point per minute.
func rawWindow(t testing.TB, c *metrics.Counters, from, to time.Time) []metrics.Minute {
	t.Helper()
	ms, err := c.Minutes(context.Background(), from, to)
	if err != nil {
		t.Fatal(err)
	}
	return metrics.FillMinutes(from, int(to.Sub(from)/time.Minute), ms)
}

// sameMinutes compares a Series read with the reference: every counter from
// full on, the counters a roll-up keeps per minute before it.
func sameMinutes(t *testing.T, label string, got, want []metrics.Minute, full time.Time) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d minutes, want %d", label, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Start.Before(full) {
			g.Counts = metrics.MinuteSums{Requests: g.Requests, Errors5xx: g.Errors5xx, Throttled: g.Throttled, DurationMs: g.DurationMs}.Counts()
			w.Counts = metrics.MinuteSums{Requests: w.Requests, Errors5xx: w.Errors5xx, Throttled: w.Throttled, DurationMs: w.DurationMs}.Counts()
		}
		if !g.Start.Equal(w.Start) || g.Counts != w.Counts {
			t.Fatalf("%s: minute %d (%s) = %+v, want %+v", label, i, w.Start.Format(time.RFC3339), g, w)
		}
	}
}

func TestRollupWrittenOnceUnderConcurrentEvaluations(t *testing.T) {
	var calls store.CallCounter
	env := dynamotest.New(t, "system-monitor", nil, calls.Option())
	ctx := context.Background()
	hour := base // 10:00
	rnd := rand.New(rand.NewPCG(7, 7))
	// The hour before and after hold traffic too: neither may leak into 10:00.
	sums := seedMinutes(t, env.Client, env.Tables.Metrics, 4, hour.Add(-5*time.Minute), 70, 0.2, rnd)
	var want metrics.Counts
	for m := hour; m.Before(hour.Add(time.Hour)); m = m.Add(time.Minute) {
		want = want.Plus(sums[m.Unix()])
	}
	fake := clock.NewFake(hour.Add(time.Hour + metrics.SettleAfter)) // 11:00:30: the hour has just settled
	counters := metrics.NewCounters(env.Client, env.Tables.Metrics, 4, fake)
	rollups := metrics.NewRollups(env.Client, env.Tables.Metrics, fake)
	newSeries := func() *metrics.Series { return metrics.NewSeries(counters, rollups, fake, nil) }

	// Eight instances evaluate at once (duplicated and retried schedule deliveries).
	const n = 8
	series := make([]*metrics.Series, n)
	results := make([]metrics.RollUpResult, n)
	var wg sync.WaitGroup
	for i := range series {
		series[i] = newSeries()
		wg.Go(func() {
			var err error
			if results[i], err = series[i].RollUp(ctx, time.Hour, metrics.RollupBatch); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var written, found int
	for _, r := range results {
		written += r.Written
		found += r.Found
		if r.Missing != 0 {
			t.Errorf("result %+v: the hour is still missing", r)
		}
	}
	if written != 1 || found != n-1 {
		t.Errorf("written %d, found %d; want one write and %d instances finding it", written, found, n-1)
	}
	check := func(label string) {
		t.Helper()
		got, err := rollups.Range(ctx, hour.Add(-time.Hour), hour.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		r := got[hour.Unix()]
		if len(got) != 1 || r == nil {
			t.Fatalf("%s: roll-ups %v, want only 10:00", label, got)
		}
		if r.Totals != want {
			t.Errorf("%s: totals %+v, want %+v", label, r.Totals, want)
		}
		for i := range r.Minutes {
			c := sums[hour.Add(time.Duration(i)*time.Minute).Unix()]
			if w := (metrics.MinuteSums{Requests: c.Requests, Errors5xx: c.Errors5xx, Throttled: c.Throttled, DurationMs: c.DurationMs}); r.Minutes[i] != w {
				t.Errorf("%s: minute %d = %+v, want %+v", label, i, r.Minutes[i], w)
			}
		}
	}
	check("after concurrent evaluations")

	// Counts arriving after the hour settled, then more evaluations: the
	// roll-up stays as written (never doubled, never rewritten).
	if err := counters.Add(ctx, hour.Add(30*time.Minute), metrics.Counts{Requests: 1000, Errors5xx: 1000}); err != nil {
		t.Fatal(err)
	}
	fake.Advance(time.Minute)
	for i := 0; i < 3; i++ {
		r, err := newSeries().RollUp(ctx, 2*time.Hour, metrics.RollupBatch) // 09:00 (empty) and 10:00
		if err != nil || r.Written > 1 || r.Found < 1 {
			t.Errorf("late evaluation %d: %+v %v", i, r, err)
		}
	}
	calls.Reset()
	if r, err := series[0].RollUp(ctx, time.Hour, metrics.RollupBatch); err != nil || r != (metrics.RollUpResult{}) || calls.Total() != 0 {
		t.Errorf("an instance that knows the roll-up: %+v %v, %d calls (%v), want none", r, err, calls.Total(), calls.Snapshot())
	}
	rs, _ := rollups.Range(ctx, hour, hour)
	if rs[hour.Unix()].Totals != want {
		t.Errorf("after late counts: totals %+v, want %+v unchanged", rs[hour.Unix()].Totals, want)
	}
}

func TestRollupWaitsUntilTheHourHasSettled(t *testing.T) {
	env := dynamotest.New(t, "system-monitor", nil)
	ctx := context.Background()
	fake := clock.NewFake(base.Add(time.Hour + metrics.SettleAfter - time.Nanosecond)) // 11:00:29.999999999
	rollups := metrics.NewRollups(env.Client, env.Tables.Metrics, fake)
	s := metrics.NewSeries(metrics.NewCounters(env.Client, env.Tables.Metrics, 4, fake), rollups, fake, nil)
	if _, err := s.RollUp(ctx, 3*time.Hour, metrics.RollupBatch); err != nil {
		t.Fatal(err)
	}
	got, err := rollups.Range(ctx, base.Add(-5*time.Hour), base.Add(5*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[base.Unix()] != nil || got[base.Add(-time.Hour).Unix()] == nil {
		t.Errorf("roll-ups before 10:00 settled: %d, 10:00 present %v", len(got), got[base.Unix()] != nil)
	}
	fake.Advance(time.Nanosecond)
	if r, err := s.RollUp(ctx, 3*time.Hour, metrics.RollupBatch); err != nil || r.Written != 1 {
		t.Errorf("once settled: %+v %v, want 10:00 written", r, err)
	}
}

func TestRollupCatchesUpNewestFirstWithinTheLookback(t *testing.T) {
	var calls store.CallCounter
	env := dynamotest.New(t, "system-monitor", nil, calls.Option())
	ctx := context.Background()
	fake := clock.NewFake(base.Add(20 * time.Second)) // 10:00:20: 09:00 is not settled yet
	rollups := metrics.NewRollups(env.Client, env.Tables.Metrics, fake)
	counters := metrics.NewCounters(env.Client, env.Tables.Metrics, 4, fake)
	s := metrics.NewSeries(counters, rollups, fake, nil)
	latest := base.Add(-2 * time.Hour) // 08:00
	lookback := metrics.RollupLookback
	rounds := 0
	for {
		calls.Reset()
		r, err := s.RollUp(ctx, lookback, metrics.RollupBatch)
		if err != nil {
			t.Fatal(err)
		}
		if r.Written == 0 {
			if r.Missing != 0 || calls.Total() != 0 {
				t.Errorf("done: %+v with %d calls, want nothing missing and no call", r, calls.Total())
			}
			break
		}
		rounds++
		if r.Written != metrics.RollupBatch {
			t.Errorf("round %d wrote %d, want %d", rounds, r.Written, metrics.RollupBatch)
		}
		if q := calls.Count("Query"); q != 1+4 || calls.Count("PutItem") != metrics.RollupBatch {
			t.Errorf("round %d calls %v: want the roll-up Query, one Query per shard and one PutItem per hour", rounds, calls.Snapshot())
		}
		// Newest first: after round k the newest k×batch hours exist.
		got, err := rollups.Range(ctx, latest.Add(-time.Duration(rounds*metrics.RollupBatch-1)*time.Hour), latest)
		if err != nil || len(got) != rounds*metrics.RollupBatch {
			t.Fatalf("round %d: %d newest roll-ups, %v", rounds, len(got), err)
		}
		if rounds > 100 {
			t.Fatal("no end")
		}
	}
	if want := int(lookback / time.Hour / metrics.RollupBatch); rounds != want {
		t.Errorf("%d rounds, want %d", rounds, want)
	}
	all, err := rollups.Range(ctx, latest.Add(-2*lookback), base.Add(time.Hour))
	if err != nil || len(all) != int(lookback/time.Hour) {
		t.Errorf("%d roll-ups in all, want %d (nothing older than the look-back, nothing unsettled): %v", len(all), lookback/time.Hour, err)
	}
	// Another instance: one Query finds them all; nothing is written.
	calls.Reset()
	if r, err := metrics.NewSeries(counters, rollups, fake, nil).RollUp(ctx, lookback, metrics.RollupBatch); err != nil || r.Written != 0 || r.Found != int(lookback/time.Hour) || calls.Total() != 1 {
		t.Errorf("cold instance: %+v %v, %v", r, err, calls.Snapshot())
	}
}

// Every minute a Series serves is the raw minute's value, whether it comes
// from a roll-up, this instance's cache or a read, with the schedule running,
// skipping hours or stopped, and with a roll-up deleted. The reference is
// the seeded data itself.
func TestSeriesMatchesTheRawMinutes(t *testing.T) {
	env := dynamotest.New(t, "system-monitor", nil)
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(11, 13))
	start := base.Add(-30 * time.Hour)
	sums := seedMinutes(t, env.Client, env.Tables.Metrics, 4, start, 30*60+90, 0.3, rnd)
	reference := func(from, to time.Time) []metrics.Minute {
		var ms []metrics.Minute
		for m := from; m.Before(to); m = m.Add(time.Minute) {
			ms = append(ms, metrics.Minute{Start: m, Counts: sums[m.Unix()]})
		}
		return ms
	}
	fake := clock.NewFake(start)
	counters := metrics.NewCounters(env.Client, env.Tables.Metrics, 4, fake)
	rollups := metrics.NewRollups(env.Client, env.Tables.Metrics, fake)
	warm := metrics.NewSeries(counters, rollups, fake, nil)
	schedule := metrics.NewSeries(counters, rollups, fake, nil)
	for step := 0; fake.Now().Before(base); step++ {
		fake.Advance(time.Duration(rnd.Int64N(int64(50 * time.Minute))))
		now := fake.Now()
		cur := now.Truncate(time.Minute)
		if rnd.IntN(3) > 0 { // the schedule runs two steps in three
			if _, err := schedule.RollUp(ctx, 24*time.Hour, 3); err != nil {
				t.Fatal(err)
			}
		}
		if step == 20 { // a roll-up lost: readers fall back to its minutes
			if _, err := env.Client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(env.Tables.Metrics), Key: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: metrics.RollupPartition}, "sk": &types.AttributeValueMemberS{Value: metrics.MinuteKey(now.Add(-3 * time.Hour).Truncate(time.Hour))},
			}}); err != nil {
				t.Fatal(err)
			}
		}
		// The figures' window (24 h to the current minute, the last two with
		// every counter) and a history window of 1..26 hours.
		from, to, full := cur.Add(-24*time.Hour+time.Minute), cur.Add(time.Minute), cur.Add(-time.Minute)
		hours := 1 + rnd.IntN(26)
		hfrom := cur.Add(-time.Duration(hours) * time.Hour)
		readers := []*metrics.Series{warm}
		if step%4 == 0 {
			readers = append(readers, metrics.NewSeries(counters, rollups, fake, nil)) // a cold instance
		}
		for i, s := range readers {
			got, err := s.Read(ctx, from, to, full)
			if err != nil {
				t.Fatal(err)
			}
			sameMinutes(t, fmt.Sprintf("step %d reader %d figures at %s", step, i, now.Format(time.RFC3339)), got, reference(from, to), full)
			got, err = s.Read(ctx, hfrom, cur, cur)
			if err != nil {
				t.Fatal(err)
			}
			sameMinutes(t, fmt.Sprintf("step %d reader %d history %d h", step, i, hours), got, reference(hfrom, cur), cur)
		}
	}
}

func TestSeriesFallsBackToMinutesWhenARollupIsMissing(t *testing.T) {
	var calls store.CallCounter
	env := dynamotest.New(t, "system-monitor", nil, calls.Option())
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(3, 4))
	now := base.Add(25*time.Minute + 10*time.Second) // 10:25:10
	seedMinutes(t, env.Client, env.Tables.Metrics, 4, now.Add(-26*time.Hour), 26*60, 0, rnd)
	fake := clock.NewFake(now)
	counters := metrics.NewCounters(env.Client, env.Tables.Metrics, 4, fake)
	rollups := metrics.NewRollups(env.Client, env.Tables.Metrics, fake)
	if _, err := metrics.NewSeries(counters, rollups, fake, nil).RollUp(ctx, 26*time.Hour, 26); err != nil {
		t.Fatal(err)
	}
	lost := base.Add(-7 * time.Hour)
	if _, err := env.Client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(env.Tables.Metrics), Key: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: metrics.RollupPartition}, "sk": &types.AttributeValueMemberS{Value: metrics.MinuteKey(lost)},
	}}); err != nil {
		t.Fatal(err)
	}
	var logs apitest.LogBuffer
	s := metrics.NewSeries(counters, rollups, fake, slog.New(slog.NewTextHandler(&logs, nil)))
	end := now.Truncate(time.Minute)
	from := end.Add(-24 * time.Hour)
	calls.Reset()
	got, err := s.Read(ctx, from, end, end)
	if err != nil {
		t.Fatal(err)
	}
	// The roll-ups and the current hour together, then the lost hour's minutes.
	if q := calls.Count("Query"); q != 1+4+4 {
		t.Errorf("%d Queries (%v), want the roll-ups, the current hour per shard and the lost hour per shard", q, calls.Snapshot())
	}
	sameMinutes(t, "with 03:00 missing", got, rawWindow(t, counters, from, end), end)
	if !strings.Contains(logs.String(), "roll-ups missing") || !strings.Contains(logs.String(), "hours=1") {
		t.Errorf("fallback not logged: %q", logs.String())
	}
	// The lost hour's minutes are cached now: the next read reads the new minutes only.
	fake.Advance(time.Minute)
	calls.Reset()
	if _, err := s.Read(ctx, from.Add(time.Minute), end.Add(time.Minute), end.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if q := calls.Count("Query"); q != 4 {
		t.Errorf("warm read: %d Queries (%v), want one per shard for the unsettled minutes", q, calls.Snapshot())
	}
}

// lowKeys records, for each Query of minute counters, the lowest minute key
// it asks for (its sort-key range starts there).
type lowKeys struct {
	mu   sync.Mutex
	lows []string
}

func (l *lowKeys) option() func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(middleware.InitializeMiddlewareFunc("lowKeys", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if q, ok := in.Parameters.(*dynamodb.QueryInput); ok {
					low, counters := "", false
					for _, v := range q.ExpressionAttributeValues {
						if sv, ok := v.(*types.AttributeValueMemberS); ok {
							switch {
							case strings.HasPrefix(sv.Value, "rt#"):
								counters = true
							case len(sv.Value) == 12 && (low == "" || sv.Value < low):
								low = sv.Value
							}
						}
					}
					if counters {
						l.mu.Lock()
						l.lows = append(l.lows, low)
						l.mu.Unlock()
					}
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
		})
	}
}

// reads reports whether a recorded Query covered the minute key k, and forgets them.
func (l *lowKeys) reads(k string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	hit := false
	for _, low := range l.lows {
		hit = hit || low <= k
	}
	l.lows = nil
	return hit
}

// A minute is cached only once it has settled: counts that arrive late (up
// to SettleAfter after the minute ends) are always seen; after that the
// instance serves its cached value and never reads the minute again (counts
// arriving even later are the documented bound).
func TestSeriesNeverCachesAnUnsettledMinute(t *testing.T) {
	var lows lowKeys
	env := dynamotest.New(t, "system-monitor", nil, lows.option())
	ctx := context.Background()
	m := base.Add(30 * time.Minute)                // minute m = 10:30
	fake := clock.NewFake(m.Add(50 * time.Second)) // 10:30:50
	counters := metrics.NewCounters(env.Client, env.Tables.Metrics, 4, fake)
	s := metrics.NewSeries(counters, metrics.NewRollups(env.Client, env.Tables.Metrics, fake), fake, nil)
	read := func(s *metrics.Series) metrics.Counts {
		t.Helper()
		cur := fake.Now().Truncate(time.Minute)
		ms, err := s.Read(ctx, base, cur.Add(time.Minute), cur.Add(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ms {
			if x.Start.Equal(m) {
				return x.Counts
			}
		}
		t.Fatal("minute m not in the window")
		return metrics.Counts{}
	}
	steps := []struct {
		name  string
		at    time.Duration // after m ends
		add   int64         // requests added to minute m first
		want  int64
		reads bool // whether minute m is read from DynamoDB
	}{
		{"during the minute", -10 * time.Second, 1, 1, true},
		{"just after it ended", time.Second, 2, 3, true},
		{"a late flush inside SettleAfter", metrics.SettleAfter - time.Millisecond, 4, 7, true},
		{"settled: read once more, now cached", metrics.SettleAfter, 0, 7, true},
		{"cached: not read again", metrics.SettleAfter + 5*time.Minute, 0, 7, false},
		{"a count later than SettleAfter: not seen by this instance", metrics.SettleAfter + 6*time.Minute, 8, 7, false},
	}
	for _, st := range steps {
		fake.Set(m.Add(time.Minute + st.at))
		if st.add > 0 {
			if err := counters.Add(ctx, m, metrics.Counts{Requests: st.add, Slow: st.add}); err != nil {
				t.Fatal(err)
			}
		}
		lows.reads("") // forget the write's calls (none are Queries) and earlier reads
		got := read(s)
		if got.Requests != st.want || got.Slow != st.want {
			t.Errorf("%s: minute m = %+v, want %d requests", st.name, got, st.want)
		}
		if r := lows.reads(metrics.MinuteKey(m)); r != st.reads {
			t.Errorf("%s: minute m read from DynamoDB = %v, want %v", st.name, r, st.reads)
		}
	}
	// Another instance reads it, the very late count included.
	if got := read(metrics.NewSeries(counters, metrics.NewRollups(env.Client, env.Tables.Metrics, fake), fake, nil)); got.Requests != 15 {
		t.Errorf("new instance: minute m = %+v, want 15 requests", got)
	}
}
