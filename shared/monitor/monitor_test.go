package monitor_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/load"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/monitor"
)

// base is far from DynamoDB Local's real clock, so no ttl is near its sweep.
var base = time.Date(2100, 3, 10, 10, 0, 0, 0, time.UTC)

const capacityRPM = 60000

func settings(env *dynamotest.Env) monitor.Settings {
	return monitor.Settings{
		Realtime: true, Source: "dynamodb", CapacityRPM: capacityRPM, Shards: 4,
		MetricsTable: env.Tables.Metrics, AlertsTable: env.Tables.Alerts,
		OverrideTable: env.Tables.LoadOverrides, OverrideTTL: 6 * time.Hour,
	}
}

func newMonitor(t testing.TB, db monitor.API, env *dynamotest.Env, c clock.Clock) *monitor.Monitor {
	t.Helper()
	memory := 0.5
	m, err := monitor.New(db, settings(env), nil, func() *float64 { return &memory }, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// minutes serves a fixed list to the load meter, as the old code did.
type minutes []metrics.Minute

func (ms minutes) Minutes(_ context.Context, from, to time.Time) ([]metrics.Minute, error) {
	var out []metrics.Minute
	for _, m := range ms {
		if !m.Start.Before(from) && m.Start.Before(to) {
			out = append(out, m)
		}
	}
	return out, nil
}

// oldFigures is the computation before the roll-ups: every minute item of
// the last 24 h read on every call, then the same formulas.
func oldFigures(t *testing.T, counters *metrics.Counters, overrides *load.Overrides, c clock.Clock) monitor.Figures {
	t.Helper()
	ctx := context.Background()
	now := c.Now()
	cur := now.Truncate(time.Minute)
	last := cur.Add(-time.Minute)
	ms, err := counters.Minutes(ctx, cur.Add(-24*time.Hour+time.Minute), cur.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var day, minute metrics.Counts
	for _, mm := range ms {
		day = day.Plus(mm.Counts)
		if mm.Start.Equal(last) {
			minute = minute.Plus(mm.Counts)
		}
	}
	successful := day.Requests - day.Errors5xx - day.Throttled
	availability := 100.0
	if day.Requests > 0 {
		availability = 100 * (1 - float64(day.Errors5xx)/float64(day.Requests))
	}
	var avg, errRate float64
	if minute.Requests > 0 {
		avg = float64(minute.DurationMs) / float64(minute.Requests)
		errRate = float64(minute.Errors5xx) / float64(minute.Requests) * 100
	}
	snap, err := load.NewMeterFrom(minutes(ms), overrides, capacityRPM, c).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return monitor.Figures{
		Now: now, Total: &day.Requests, Successful: &successful, Failed: &day.Errors5xx, Throttled: &day.Throttled,
		Availability: &availability, Rate: &minute.Requests, AverageResponseTime: &avg, SlowQueries: &minute.Slow,
		ErrorRate: &errRate, CurrentLoad: &snap.CurrentLoad, ActiveConnections: &snap.ActiveConnections,
	}
}

func sameFigures(t *testing.T, label string, got, want monitor.Figures) {
	t.Helper()
	ints := map[string][2]*int64{
		"total": {got.Total, want.Total}, "successful": {got.Successful, want.Successful}, "failed": {got.Failed, want.Failed},
		"throttled": {got.Throttled, want.Throttled}, "rate": {got.Rate, want.Rate}, "slow": {got.SlowQueries, want.SlowQueries},
	}
	for name, p := range ints {
		if p[0] == nil || *p[0] != *p[1] {
			t.Errorf("%s: %s = %v, want %d", label, name, deref(p[0]), *p[1])
		}
	}
	floats := map[string][2]*float64{
		"availability": {got.Availability, want.Availability}, "averageResponseTime": {got.AverageResponseTime, want.AverageResponseTime},
		"errorRate": {got.ErrorRate, want.ErrorRate}, "currentLoad": {got.CurrentLoad, want.CurrentLoad},
		"activeConnections": {got.ActiveConnections, want.ActiveConnections},
	}
	for name, p := range floats {
		if p[0] == nil || *p[0] != *p[1] {
			t.Errorf("%s: %s = %v, want %v", label, name, deref(p[0]), *p[1])
		}
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestFiguresEqualTheRawMinuteComputation: over a simulated day and a half of
// random traffic (counts written as time passes, late flushes inside
// SettleAfter included), with the schedule rolling hours up and an operator
// override, every figure a warm and a cold instance report equals the old
// computation over every minute item at the same moment.
func TestFiguresEqualTheRawMinuteComputation(t *testing.T) {
	env := dynamotest.New(t, "system-monitor", nil)
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(5, 8))
	fake := clock.NewFake(base.Add(-30 * time.Hour))
	counters := metrics.NewCounters(env.Client, env.Tables.Metrics, 4, fake)
	overrides := load.NewOverrides(env.Client, env.Tables.LoadOverrides, 6*time.Hour, fake)
	warm := newMonitor(t, env.Client, env, fake)
	schedule := newMonitor(t, env.Client, env, fake)
	peaks := metrics.NewPeaks(env.Client, env.Tables.Metrics, fake)
	prev := fake.Now()
	for step := 0; fake.Now().Before(base); step++ {
		fake.Advance(time.Duration(5+rnd.Int64N(int64(40*time.Minute/time.Second))) * time.Second)
		now := fake.Now()
		// Traffic between the last step and now, written as it happens: a few
		// adds at random instants (each lands on a random shard).
		for i := 0; i < 1+rnd.IntN(6); i++ {
			at := prev.Add(time.Duration(rnd.Int64N(int64(now.Sub(prev)) + 1)))
			r := 1 + rnd.Int64N(400)
			d := metrics.Counts{Requests: r, Admitted: rnd.Int64N(r + 1), Errors5xx: rnd.Int64N(r/10 + 1), Throttled: rnd.Int64N(r/10 + 1),
				Slow: rnd.Int64N(r/20 + 1), DurationMs: r * rnd.Int64N(500), FailedLogins: rnd.Int64N(2)}
			if err := counters.Add(ctx, at, d); err != nil {
				t.Fatal(err)
			}
		}
		if cur := now.Truncate(time.Minute); now.Sub(cur) < metrics.SettleAfter && rnd.IntN(2) == 0 {
			// A late flush into the minute that just ended.
			if err := counters.Add(ctx, cur.Add(-time.Second), metrics.Counts{Requests: 7, Admitted: 7, DurationMs: 70, Slow: 1}); err != nil {
				t.Fatal(err)
			}
		}
		prev = now
		if step == 30 {
			if _, err := overrides.Add(ctx, 40, 0.25); err != nil {
				t.Fatal(err)
			}
		}
		if rnd.IntN(4) > 0 { // the schedule, three steps in four
			if _, _, err := schedule.EvaluateAlerts(ctx); err != nil {
				t.Fatal(err)
			}
		}
		want := oldFigures(t, counters, overrides, fake)
		readers := []*monitor.Monitor{warm}
		if step%5 == 0 {
			readers = append(readers, newMonitor(t, env.Client, env, fake))
		}
		for i, m := range readers {
			f, list, err := m.Snapshot(ctx, monitor.Want{Peak: true, Alerts: true})
			if err != nil {
				t.Fatal(err)
			}
			label := fmt.Sprintf("step %d reader %d at %s", step, i, now.Format(time.RFC3339))
			sameFigures(t, label, f, want)
			if list == nil {
				t.Errorf("%s: alerts nil", label)
			}
			// The peak is the highest stored load of 24 h, this load included,
			// and this load is stored now.
			stored, err := peaks.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if f.PeakLoad == nil || *f.PeakLoad != stored.Max || stored.Hour < *f.CurrentLoad {
				t.Errorf("%s: peakLoad %v, stored %+v, currentLoad %v", label, deref(f.PeakLoad), stored, *f.CurrentLoad)
			}
		}
	}
}

// gate holds each DynamoDB call of a measured request until want calls have
// arrived (or 3 s have passed), then lets them all go; a call that arrives
// after another has finished is a later round trip. With want 0 it only counts.
type gate struct {
	mu       sync.Mutex
	on       bool
	want     int
	arrived  int
	finished int
	late     int
	all      chan struct{}
}

func (g *gate) arm(want int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.on, g.want, g.arrived, g.finished, g.late, g.all = true, want, 0, 0, 0, make(chan struct{})
}

// disarm stops gating and returns the calls and the late ones.
func (g *gate) disarm() (calls, late int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.on = false
	return g.arrived, g.late
}

func (g *gate) option() func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(middleware.InitializeMiddlewareFunc("gate", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				g.mu.Lock()
				if !g.on {
					g.mu.Unlock()
					return next.HandleInitialize(ctx, in)
				}
				g.arrived++
				if g.finished > 0 {
					g.late++
				}
				if g.arrived == g.want {
					close(g.all)
				}
				all, wait := g.all, g.want > 0
				g.mu.Unlock()
				if wait {
					select {
					case <-all:
					case <-time.After(3 * time.Second): // a sequential caller: let it go, it is counted late
					}
				}
				defer func() {
					g.mu.Lock()
					g.finished++
					g.mu.Unlock()
				}()
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
		})
	}
}

// The monitor's independent reads leave together: the overview, the health
// figures and the history, cold and warm, are one round trip each.
func TestReadsAreIssuedTogether(t *testing.T) {
	env := dynamotest.New(t, "system-monitor", nil)
	ctx := context.Background()
	now := base.Add(20*time.Minute + 40*time.Second)
	fake := clock.NewFake(now)
	counters := metrics.NewCounters(env.Client, env.Tables.Metrics, 4, fake)
	for i := 0; i < 40; i++ {
		if err := counters.Add(ctx, now.Add(-time.Duration(i)*17*time.Minute), metrics.Counts{Requests: 3, Admitted: 3, DurationMs: 30}); err != nil {
			t.Fatal(err)
		}
	}
	// The schedule has rolled up the week; the current load is below the
	// hour's stored peak, so no read writes.
	schedule := newMonitor(t, env.Client, env, fake)
	if r, err := schedule.Series().RollUp(ctx, metrics.RollupLookback, 168); err != nil || r.Missing != 0 {
		t.Fatal(r, err)
	}
	if err := metrics.NewPeaks(env.Client, env.Tables.Metrics, fake).Offer(ctx, 0.9); err != nil {
		t.Fatal(err)
	}
	var g gate
	client := env.NewClient(t, g.option())
	m := newMonitor(t, client, env, fake)
	h := newMonitor(t, client, env, fake) // reads only the history
	overview := func(m *monitor.Monitor, w monitor.Want) func() error {
		return func() error {
			_, _, err := m.Snapshot(ctx, w)
			return err
		}
	}
	history := func(m *monitor.Monitor) func() error {
		return func() error {
			_, _, err := m.History(ctx, 168)
			return err
		}
	}
	steps := []struct {
		name    string
		advance time.Duration
		want    int
		call    func() error
	}{
		// roll-ups of the settled hours, the current hour on 4 shards, overrides, peaks, alerts
		{"overview, cold", 0, 1 + 4 + 1 + 1 + 1, overview(m, monitor.Want{Peak: true, Alerts: true})},
		// the unsettled minutes on 4 shards, overrides, peaks, alerts
		{"overview, warm", 3 * time.Second, 4 + 1 + 1 + 1, overview(m, monitor.Want{Peak: true, Alerts: true})},
		{"health, warm", 3 * time.Second, 4 + 1 + 1, overview(m, monitor.Want{Alerts: true})},
		// roll-ups of the week, the current hour on 4 shards
		{"history 168 h, cold", 0, 1 + 4, history(h)},
		// the minute that has completed since, on 4 shards
		{"history 168 h, warm", time.Minute, 4, history(h)},
	}
	for _, st := range steps {
		fake.Advance(st.advance)
		g.arm(st.want)
		err := st.call()
		calls, late := g.disarm()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if calls != st.want || late != 0 {
			t.Errorf("%s: %d calls, %d of them after another had finished; want %d in one round trip", st.name, calls, late, st.want)
		}
	}
}

// A read offers the current load to the hour's peak only when it is higher
// than the stored one: the conditional update is the read's only write.
func TestSnapshotWritesThePeakOnlyWhenItRises(t *testing.T) {
	env := dynamotest.New(t, "system-monitor", nil)
	ctx := context.Background()
	now := base.Add(30 * time.Second)
	fake := clock.NewFake(now)
	counters := metrics.NewCounters(env.Client, env.Tables.Metrics, 4, fake)
	var g gate
	m := newMonitor(t, env.NewClient(t, g.option()), env, fake)
	read := func(admitted int64) (float64, float64, int) {
		t.Helper()
		if admitted > 0 {
			if err := counters.Add(ctx, fake.Now(), metrics.Counts{Requests: admitted, Admitted: admitted}); err != nil {
				t.Fatal(err)
			}
		}
		g.arm(0) // count only
		f, _, err := m.Snapshot(ctx, monitor.Want{Peak: true})
		calls, _ := g.disarm()
		if err != nil || f.PeakLoad == nil {
			t.Fatalf("%+v %v", f, err)
		}
		return *f.CurrentLoad, *f.PeakLoad, calls
	}
	_, _, _ = read(0) // warm the cache: no traffic, load 0 (a new hour: the first offer writes 0)
	steps := []struct {
		admitted  int64
		wantCalls int // 4 shards + overrides + peaks (+ 1 update)
	}{
		{6000, 7}, // load 0.1: a new peak
		{0, 6},    // same load: nothing to write
		{6000, 7}, // 0.2: higher again
	}
	var peak float64
	for i, st := range steps {
		fake.Advance(time.Second)
		cl, p, calls := read(st.admitted)
		if calls != st.wantCalls || p < cl || p < peak {
			t.Errorf("step %d: load %v peak %v with %d calls; want %d calls and a peak that never falls", i, cl, p, calls, st.wantCalls)
		}
		peak = p
	}
}
