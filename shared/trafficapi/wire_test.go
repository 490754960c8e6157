package trafficapi_test

import (
	"context"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
)

// ticking is a clock that moves on by step at every reading, so a
// processingTime measured from the request's start is above zero.
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

var positiveMs = regexp.MustCompile(`^[1-9][0-9]*ms$`)

// TestWireFormat checks, through the real handler, what the original's
// clients read: status=true reports the request-load fraction under its own
// names (currentLoad, measuredLoad) and cpuLoad as null (Lambda exposes no
// CPU figure); every 200 carries a measured processingTime ("<n>ms"): the
// status answer, the front door's metrics object and the override answer.
func TestWireFormat(t *testing.T) {
	env := dynamotest.New(t, "traffic-manager", small)
	fake := clock.NewFake(base)
	counters := metrics.NewCounters(env.Client, env.Tables.Metrics, env.Config.MetricShards, fake)
	if err := counters.Add(context.Background(), base, metrics.Counts{Requests: 600, Admitted: 600, DurationMs: 60000}); err != nil {
		t.Fatal(err)
	}

	a := newApp(t, env, appOpts{clock: fake})
	res := a.do(http.MethodGet, query("status", "true"))
	sl, _ := res.Body["systemLoad"].(map[string]any)
	if res.Status != 200 || sl == nil {
		t.Fatalf("status: %d %v", res.Status, res.Body)
	}
	if v, ok := sl["cpuLoad"]; !ok || v != nil {
		t.Errorf("systemLoad.cpuLoad = %v (present %v), want null", v, ok)
	}
	if sl["currentLoad"] != 0.1 || sl["measuredLoad"] != 0.1 {
		t.Errorf("the load keeps its own names: currentLoad %v, measuredLoad %v, want 0.1", sl["currentLoad"], sl["measuredLoad"])
	}

	clk := &ticking{now: base.Add(time.Second), step: time.Millisecond}
	b := newApp(t, env, appOpts{clock: clk})
	b.admin = seedIdentity(t, env, clk).admin
	answers := map[string]func() (int, any){
		"status=true": func() (int, any) {
			r := b.do(http.MethodGet, query("status", "true"))
			return r.Status, r.Body["processingTime"]
		},
		"front door": func() (int, any) {
			r := b.do(http.MethodGet)
			m, _ := r.Body["metrics"].(map[string]any)
			return r.Status, m["processingTime"]
		},
		"override": func() (int, any) {
			r := b.do(http.MethodPost, bearer(b.admin), body(`{"simulateLoad":false}`))
			return r.Status, r.Body["processingTime"]
		},
	}
	for name, do := range answers {
		status, pt := do()
		if s, _ := pt.(string); status != 200 || !positiveMs.MatchString(s) {
			t.Errorf("%s: %d processingTime %#v, want a measured \"<n>ms\"", name, status, pt)
		}
	}
}
