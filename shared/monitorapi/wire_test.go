package monitorapi_test

import (
	"context"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/monitorapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
)

// ticking is a clock that moves on by step at every reading, so the time a
// request took is the count of clock readings it made times step: a
// processingTime measured from the request's start is above zero, a constant
// one is not.
type ticking struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *ticking) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.now
	c.now = c.now.Add(c.step)
	return t
}

var processingTime = regexp.MustCompile(`^[0-9]+ms$`)

// TestWireFormat checks, through the real handlers, the system monitor's
// answers where the original's clients read them (API.md): processingTime
// ("<n>ms") on every 200, overview.lastUpdate as toISOString() gives it,
// history.timeRange literally "<h> hour(s)", and every figure named for CPU,
// disk or network null.
func TestWireFormat(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	h.fake.Set(minuteM.Add(time.Second))
	for i := 0; i < 6; i++ { // six failed logins in minute M raise the failed_logins alert
		h.deps.Recorder.CountEvent(ctx, metrics.EventFailedLogin)
	}
	h.fake.Set(minuteM.Add(time.Minute + 1234*time.Millisecond))
	evaluate(t, h)
	list := alertList(t, h)
	if len(list) != 1 {
		t.Fatalf("alerts = %v, want the failed_logins one", list)
	}
	id := list[0]["id"].(string)

	type answer struct {
		name string
		res  func() map[string]any
	}
	get := func(q map[string]string) func() map[string]any {
		return func() map[string]any {
			r := h.get(q, h.watcher)
			if r.Status != 200 {
				t.Fatalf("GET %v: %d %s", q, r.Status, r.Raw)
			}
			return r.Body
		}
	}
	post := func(path, body string) func() map[string]any {
		return func() map[string]any {
			r := h.post(path, body, h.watcher)
			if r.Status != 200 {
				t.Fatalf("POST %s: %d %s", path, r.Status, r.Raw)
			}
			return r.Body
		}
	}
	answers := []answer{
		{"default (overview)", get(nil)},
		{"overview", get(map[string]string{"endpoint": "overview"})},
		{"metrics", get(map[string]string{"endpoint": "metrics"})},
		{"history 1 h", get(map[string]string{"endpoint": "history"})},
		{"history 24 h", get(map[string]string{"endpoint": "history", "hours": "24"})},
		{"health", get(map[string]string{"endpoint": "health"})},
		{"alerts", get(map[string]string{"endpoint": "alerts"})},
		{"posted sample", post("/api/system-monitor", `{"requests":{"total":3}}`)},
		{"acknowledge", post("/api/system-monitor/alerts/"+id+"/acknowledge", "")},
	}
	bodies := map[string]map[string]any{}
	for _, a := range answers {
		t.Run(a.name, func(t *testing.T) {
			body := a.res()
			bodies[a.name] = body
			// A frozen clock: no time passes, and the original's "<n>ms" says so.
			if body["processingTime"] != "0ms" {
				t.Errorf("processingTime = %#v, want \"0ms\"", body["processingTime"])
			}
		})
	}

	if got := field(t, bodies["overview"], "overview", "lastUpdate"); got != "2026-11-26T10:01:01.234Z" {
		t.Errorf("overview.lastUpdate = %#v, want the clock's time as toISOString() writes it", got)
	}
	for name, want := range map[string]string{"history 1 h": "1 hour(s)", "history 24 h": "24 hour(s)"} {
		if got := bodies[name]["timeRange"]; got != want {
			t.Errorf("%s: timeRange = %#v, want %q", name, got, want)
		}
	}
	nulls := map[string][][]string{
		"overview": {{"performance", "cpuUsage"}, {"performance", "diskUsage"}},
		"metrics":  {{"resources", "cpuLoad"}, {"resources", "diskUsage"}, {"resources", "networkIO"}},
	}
	for name, paths := range nulls {
		for _, p := range paths {
			if v := field(t, bodies[name], p...); v != nil {
				t.Errorf("%s: %v = %v, want null", name, p, v)
			}
		}
	}
	for _, p := range field(t, bodies["history 1 h"], "data").([]any) {
		if v, ok := p.(map[string]any)["cpuLoad"]; !ok || v != nil {
			t.Fatalf("history point cpuLoad = %v (present %v), want null", v, ok)
		}
	}
}

// TestProcessingTimeIsMeasured: on a clock that moves at every reading, the
// monitor's processingTime is the time since the request started, not a
// constant.
func TestProcessingTimeIsMeasured(t *testing.T) {
	h := newHarness(t, nil)
	clk := &ticking{now: minuteM.Add(time.Minute), step: time.Millisecond}
	d, err := platform.New(context.Background(), h.env.Config, platform.WithClock(clk), platform.WithLogger(discard),
		platform.WithMetricsOutput(h.emf), platform.WithMetricsWriteTimeout(emulatorTimeout))
	if err != nil {
		t.Fatal(err)
	}
	app, err := monitorapi.New(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range []map[string]string{{"endpoint": "overview"}, {"endpoint": "alerts"}} {
		r := call(t, app, event("GET", "/api/system-monitor", q, "", h.watcher, int64(i)))
		pt, _ := r.Body["processingTime"].(string)
		if r.Status != 200 || !processingTime.MatchString(pt) || pt == "0ms" {
			t.Errorf("%v: %d processingTime %q, want a positive \"<n>ms\": %s", q, r.Status, pt, r.Raw)
		}
	}
}
