package alerts_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/alerts"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

func i64(v int64) *int64     { return &v }
func f64(v float64) *float64 { return &v }
func ptrs(req, failed, dur, logins int64) alerts.Inputs {
	return alerts.Inputs{Requests: i64(req), Failed: i64(failed), DurationMs: i64(dur), FailedLogins: i64(logins)}
}

func TestRules(t *testing.T) {
	tests := []struct {
		name   string
		in     alerts.Inputs
		firing []string
	}{
		{"quiet minute", ptrs(100, 0, 1000, 0), nil},
		{"no traffic", ptrs(0, 0, 0, 0), nil},
		{"error rate exactly 5% is not over", ptrs(100, 5, 0, 0), nil},
		{"error rate over 5% with 20 requests", ptrs(20, 2, 0, 0), []string{alerts.RuleErrorRate}},
		{"error rate 100% but only 19 requests", ptrs(19, 19, 0, 0), []string{alerts.RuleFailedRequests}},
		{"10 failed is not more than 10", ptrs(1000, 10, 0, 0), nil},
		{"11 failed", ptrs(1000, 11, 0, 0), []string{alerts.RuleFailedRequests}},
		{"average 5000 ms is not over", ptrs(2, 0, 10000, 0), nil},
		{"average over 5000 ms", ptrs(2, 0, 10002, 0), []string{alerts.RuleResponseTime}},
		{"5 failed logins", ptrs(0, 0, 0, 5), nil},
		{"6 failed logins", ptrs(0, 0, 0, 6), []string{alerts.RuleFailedLogins}},
		{"memory 0.85 is not over", alerts.Inputs{Memory: f64(0.85)}, nil},
		{"memory over 0.85", alerts.Inputs{Memory: f64(0.86)}, []string{alerts.RuleMemory}},
		{"all inputs null: every rule disabled", alerts.Inputs{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, c := range alerts.Evaluate(tt.in) {
				if c.Breached {
					if !c.Enabled {
						t.Errorf("%s breached while disabled", c.Rule)
					}
					got = append(got, c.Rule)
				}
			}
			if len(got) != len(tt.firing) {
				t.Fatalf("firing = %v, want %v", got, tt.firing)
			}
			for i := range got {
				if got[i] != tt.firing[i] {
					t.Fatalf("firing = %v, want %v", got, tt.firing)
				}
			}
		})
	}
	for _, c := range alerts.Evaluate(alerts.Inputs{}) {
		if c.Enabled {
			t.Errorf("rule %s enabled with null inputs", c.Rule)
		}
	}
}

type fixture struct {
	store *alerts.Store
	clock *clock.Fake
	calls *store.CallCounter
	base  time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	calls := &store.CallCounter{}
	env := dynamotest.New(t, "system-monitor", nil, calls.Option())
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	fake := clock.NewFake(base.Add(time.Minute + 5*time.Second))
	return &fixture{store: alerts.NewStore(env.Client, env.Tables.Alerts, fake), clock: fake, calls: calls, base: base}
}

func breach(window time.Time) alerts.Inputs {
	in := ptrs(40, 10, 4000, 0) // 25% errors over 40 requests
	in.Window = window
	return in
}

func clean(window time.Time) alerts.Inputs {
	in := ptrs(40, 0, 4000, 0)
	in.Window = window
	return in
}

func (f *fixture) list(t *testing.T) []alerts.Alert {
	t.Helper()
	as, err := f.store.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func TestConcurrentEvaluationsRaiseOneAlert(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const n = 10
	var wg sync.WaitGroup
	results := make([][]alerts.Result, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = f.store.Evaluate(ctx, breach(f.base))
		}()
	}
	wg.Wait()
	raised := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("evaluation %d: %v", i, errs[i])
		}
		for _, r := range results[i] {
			if r.Action == alerts.ActionRaised {
				raised++
				if r.Rule != alerts.RuleErrorRate {
					t.Errorf("raised %s", r.Rule)
				}
			}
		}
	}
	if raised != 1 {
		t.Errorf("%d evaluations report raising, want 1", raised)
	}
	as := f.list(t)
	if len(as) != 1 {
		t.Fatalf("alerts = %+v, want exactly one", as)
	}
	a := as[0]
	if a.Rule != alerts.RuleErrorRate || a.Level != alerts.LevelWarning || a.State != alerts.StateFiring || a.Acknowledged {
		t.Errorf("alert = %+v", a)
	}
	if a.ID != "error_rate-"+formatInt(f.base.Unix()) || a.Timestamp != f.base.UnixMilli() {
		t.Errorf("id/timestamp = %s/%d", a.ID, a.Timestamp)
	}
	if a.Metadata["value"] != 25.0 || a.Metadata["threshold"] != 5.0 {
		t.Errorf("metadata = %+v", a.Metadata)
	}
}

func formatInt(v int64) string { return strconv.FormatInt(v, 10) }

func TestLifecycleExtendResolveRaiseAgain(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	w := func(i int) time.Time { return f.base.Add(time.Duration(i) * time.Minute) }
	mustEval := func(in alerts.Inputs) []alerts.Result {
		t.Helper()
		f.clock.Set(in.Window.Add(time.Minute + 2*time.Second))
		res, err := f.store.Evaluate(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	action := func(res []alerts.Result, rule string) alerts.Action {
		for _, r := range res {
			if r.Rule == rule {
				return r.Action
			}
		}
		return ""
	}

	if a := action(mustEval(breach(w(0))), alerts.RuleErrorRate); a != alerts.ActionRaised {
		t.Fatalf("window 0: %s", a)
	}
	if a := action(mustEval(breach(w(1))), alerts.RuleErrorRate); a != alerts.ActionExtended {
		t.Fatalf("window 1: %s, want extended (still one alert)", a)
	}
	// A repeated evaluation of window 1 counts nothing twice.
	if a := action(mustEval(breach(w(1))), alerts.RuleErrorRate); a != alerts.ActionSkipped {
		t.Fatalf("window 1 again: %s", a)
	}
	as := f.list(t)
	if len(as) != 1 || as[0].State != alerts.StateFiring || as[0].Metadata["breachedWindows"] != int64(2) {
		t.Fatalf("after two breached windows: %+v", as)
	}
	firstID := as[0].ID

	if a := action(mustEval(clean(w(2))), alerts.RuleErrorRate); a != alerts.ActionResolved {
		t.Fatalf("clean window 2: %s", a)
	}
	as = f.list(t)
	if len(as) != 1 || as[0].State != alerts.StateResolved || as[0].ID != firstID {
		t.Fatalf("after clean window (resolved but unacknowledged stays listed): %+v", as)
	}
	// A late evaluation of the breached window 1 must not reopen anything.
	if a := action(mustEval(breach(w(1))), alerts.RuleErrorRate); a != alerts.ActionSkipped {
		t.Fatalf("late window 1: %s", a)
	}
	if a := action(mustEval(clean(w(3))), alerts.RuleErrorRate); a != alerts.ActionNone {
		t.Fatalf("clean window 3: %s", a)
	}
	if a := action(mustEval(breach(w(4))), alerts.RuleErrorRate); a != alerts.ActionRaised {
		t.Fatalf("window 4: %s, want a new alert", a)
	}
	as = f.list(t)
	if len(as) != 2 || as[0].State != alerts.StateFiring || as[1].ID != firstID {
		t.Fatalf("alerts = %+v", as)
	}
}

func TestAcknowledgeIsIdempotent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.store.Evaluate(ctx, breach(f.base)); err != nil {
		t.Fatal(err)
	}
	id := f.list(t)[0].ID
	first, err := f.store.Acknowledge(ctx, id, "alice")
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(10 * time.Second)
	second, err := f.store.Acknowledge(ctx, id, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if !first.Acknowledged || !second.Acknowledged {
		t.Fatalf("not acknowledged: %+v %+v", first, second)
	}
	if first.Metadata["acknowledgedAt"] != second.Metadata["acknowledgedAt"] || second.Metadata["acknowledgedBy"] != "alice" {
		t.Errorf("second acknowledgement changed the first: %+v vs %+v", first.Metadata, second.Metadata)
	}
	as := f.list(t)
	if len(as) != 1 || !as[0].Acknowledged {
		t.Fatalf("firing acknowledged alert must stay listed: %+v", as)
	}
	// Resolved and acknowledged: no longer listed.
	f.clock.Set(f.base.Add(2*time.Minute + time.Second))
	if _, err := f.store.Evaluate(ctx, clean(f.base.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if as := f.list(t); len(as) != 0 {
		t.Errorf("resolved acknowledged alert listed: %+v", as)
	}

	for _, bad := range []string{"error_rate-1", "nope-" + formatInt(f.base.Unix()), "error_rate-" + formatInt(f.base.Unix()+60), "", "error_rate", "../x", "error_rate-99999999999999999999"} {
		if _, err := f.store.Acknowledge(ctx, bad, "alice"); !errors.Is(err, alerts.ErrNotFound) {
			t.Errorf("acknowledge %q: %v, want ErrNotFound", bad, err)
		}
	}
	// Past its TTL (not yet swept) the alert is gone for every read and write.
	f.clock.Set(f.base.Add(alerts.TTL + 2*time.Minute))
	if _, err := f.store.Acknowledge(ctx, id, "alice"); !errors.Is(err, alerts.ErrNotFound) {
		t.Errorf("acknowledge expired: %v", err)
	}
}

func TestNullInputNeverFires(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Memory unknown; request figures unknown; only failed logins measured and quiet.
	in := alerts.Inputs{Window: f.base, FailedLogins: i64(0)}
	res, err := f.store.Evaluate(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		want := alerts.ActionDisabled
		if r.Rule == alerts.RuleFailedLogins {
			want = alerts.ActionNone
		}
		if r.Action != want {
			t.Errorf("%s: %s, want %s", r.Rule, r.Action, want)
		}
	}
	if as := f.list(t); len(as) != 0 {
		t.Fatalf("alerts = %+v", as)
	}
	// The same window with memory measured over the threshold fires the critical rule.
	in.Memory = f64(0.9)
	if _, err := f.store.Evaluate(ctx, in); err != nil {
		t.Fatal(err)
	}
	as := f.list(t)
	if len(as) != 1 || as[0].Rule != alerts.RuleMemory || as[0].Level != alerts.LevelCritical {
		t.Fatalf("alerts = %+v", as)
	}
}

func TestEvaluationCalls(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.calls.Reset()
	if _, err := f.store.Evaluate(ctx, clean(f.base)); err != nil {
		t.Fatal(err)
	}
	if got := f.calls.Snapshot(); f.calls.Total() != 1 || got["Query"] != 1 {
		t.Errorf("quiet evaluation calls = %v, want one Query", got)
	}
	f.calls.Reset()
	if _, err := f.store.Evaluate(ctx, breach(f.base)); err != nil {
		t.Fatal(err)
	}
	if got := f.calls.Snapshot(); f.calls.Total() != 2 || got["TransactWriteItems"] != 1 {
		t.Errorf("raising evaluation calls = %v, want Query + TransactWriteItems", got)
	}
}
