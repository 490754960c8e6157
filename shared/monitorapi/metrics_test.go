package monitorapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/monitor"
	"github.com/zenithfresh/zenith-serverless/shared/monitorapi"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// testApp is another function instance with routes of known outcomes; a
// handler advances the fake clock by ?ms= so its duration is exact.
func (h *harness) testApp(function string) *httpapi.App {
	d := h.newDeps()
	d.Function = function
	advance := func(r *httpapi.Request) {
		if ms, err := strconv.Atoi(r.Query["ms"]); err == nil {
			h.fake.Advance(time.Duration(ms) * time.Millisecond)
		}
	}
	route := func(path string, fn func(r *httpapi.Request) (*httpapi.Response, error)) httpapi.Route {
		return httpapi.Route{Method: http.MethodGet, Path: path, Handler: func(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
			advance(r)
			return fn(r)
		}}
	}
	return d.Install(&httpapi.App{Routes: []httpapi.Route{
		route("/t/ok", func(*httpapi.Request) (*httpapi.Response, error) {
			return httpapi.JSON(200, map[string]any{"ok": true}), nil
		}),
		route("/t/bad", func(*httpapi.Request) (*httpapi.Response, error) { return nil, httpapi.Validation("nope") }),
		route("/t/throttled", func(*httpapi.Request) (*httpapi.Response, error) {
			return nil, httpapi.TooManyRequests(httpapi.CodeRateLimit, "slow down", time.Second)
		}),
		route("/t/fail", func(*httpapi.Request) (*httpapi.Response, error) { return nil, errors.New("boom") }),
		route("/t/down", func(*httpapi.Request) (*httpapi.Response, error) { return nil, store.ErrUnavailable }),
	}})
}

func TestMetricsAreExactAcrossInstancesAndMinutes(t *testing.T) {
	h := newHarness(t, nil)
	apps := map[string]*httpapi.App{"auth": h.testApp("auth"), "session": h.testApp("session"), "traffic-manager": h.testApp("traffic-manager")}
	type req struct {
		app, path string
		ms        int
		status    int
	}
	reqs := []req{
		{"auth", "/t/ok", 120, 200}, {"auth", "/t/ok", 30, 200}, {"auth", "/t/bad", 0, 400}, {"auth", "/t/nowhere", 0, 404},
		{"session", "/t/ok", 250, 200}, {"session", "/t/throttled", 0, 429}, {"session", "/t/fail", 0, 500}, {"session", "/t/ok", 0, 200},
		{"traffic-manager", "/t/down", 0, 503}, {"traffic-manager", "/t/throttled", 0, 429}, {"traffic-manager", "/t/ok", 1500, 200},
		{"traffic-manager", "/t/bad", 0, 400},
	}
	h.fake.Set(minuteM.Add(time.Second))
	h.emf.Reset()
	var n, failed, throttled, durMs, slow int
	for i, r := range reqs {
		out := call(t, apps[r.app], event("GET", r.path, map[string]string{"ms": strconv.Itoa(r.ms)}, "", "", int64(1000+i)))
		if out.Status != r.status {
			t.Fatalf("request %d %s%s: status %d, want %d (%s)", i, r.app, r.path, out.Status, r.status, out.Raw)
		}
		n++
		durMs += r.ms
		if r.status >= 500 {
			failed++
		}
		if r.status == 429 {
			throttled++
		}
		if r.ms > 1000 { // SLOW_QUERY_MS default
			slow++
		}
	}
	if !h.fake.Now().Before(minuteM.Add(time.Minute)) {
		t.Fatal("test traffic spilled out of minute M")
	}
	// One EMF line per request, each a valid document naming its function and route.
	emfLines := 0
	sc := bufio.NewScanner(bytes.NewReader(h.emf.Bytes()))
	for sc.Scan() {
		var doc map[string]any
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil || doc["_aws"] == nil || doc["function"] == "" || doc["route"] == "" {
			t.Errorf("bad EMF line %s", sc.Bytes())
		}
		emfLines++
	}
	if emfLines != n {
		t.Errorf("EMF lines = %d, want %d", emfLines, n)
	}

	// The counters of minute M are spread over shards; their sum is exact.
	perShard := map[string]int64{}
	for s := 0; s < 4; s++ {
		out, err := h.env.Client.GetItem(context.Background(), &dynamodb.GetItemInput{
			TableName: aws.String(h.env.Tables.Metrics),
			Key: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("rt#%d", s)},
				"sk": &types.AttributeValueMemberS{Value: metrics.MinuteKey(minuteM)},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := out.Item["requests"].(*types.AttributeValueMemberN); ok {
			perShard[fmt.Sprint(s)], _ = strconv.ParseInt(v.Value, 10, 64)
		}
	}
	var shardSum int64
	for _, v := range perShard {
		shardSum += v
	}
	if shardSum != int64(n) || len(perShard) < 2 {
		t.Errorf("per-shard requests %v: sum %d, want %d over several shards", perShard, shardSum, n)
	}

	// Minute M is now the last complete minute.
	h.fake.Set(minuteM.Add(time.Minute + 5*time.Second))
	m := h.get(map[string]string{"endpoint": "metrics"}, h.watcher)
	if m.Status != 200 {
		t.Fatalf("metrics: %d %s", m.Status, m.Raw)
	}
	wantAvg := math.Round(float64(durMs)/float64(n)*100) / 100
	checks := []struct {
		path []string
		want float64
	}{
		{[]string{"requests", "total"}, float64(n)},
		{[]string{"requests", "failed"}, float64(failed)},
		{[]string{"requests", "successful"}, float64(n - failed - throttled)},
		{[]string{"requests", "rate"}, float64(n)},
		{[]string{"traffic", "throttledRequests"}, float64(throttled)},
		{[]string{"performance", "errorRate"}, float64(failed) / float64(n) * 100},
		{[]string{"performance", "availability"}, 100 * (1 - float64(failed)/float64(n))},
		{[]string{"performance", "averageResponseTime"}, wantAvg},
		{[]string{"performance", "slowQueries"}, float64(slow)},
		{[]string{"timestamp"}, float64(h.fake.Now().UnixMilli())},
	}
	for _, c := range checks {
		if got := num(t, m.Body, c.path...); got != c.want {
			t.Errorf("%v = %v, want %v", c.path, got, c.want)
		}
	}
	for _, p := range [][]string{{"resources", "cpuLoad"}, {"resources", "diskUsage"}, {"resources", "networkIO"}, {"resources", "memoryUsage"}} {
		if v := field(t, m.Body, p...); v != nil {
			t.Errorf("%v = %v, want null (no AWS_LAMBDA_FUNCTION_MEMORY_SIZE in the test)", p, v)
		}
	}
	load := num(t, m.Body, "traffic", "currentLoad")
	peak := num(t, m.Body, "traffic", "peakLoad")
	if load <= 0 || load > 1 || peak < load {
		t.Errorf("currentLoad %v, peakLoad %v", load, peak)
	}
	if ac := num(t, m.Body, "resources", "activeConnections"); ac <= 0 {
		t.Errorf("activeConnections = %v", ac)
	}

	// Next minute: the GET above (200, 0 ms) is the only request of minute M+1.
	h.fake.Set(minuteM.Add(2*time.Minute + 5*time.Second))
	m = h.get(map[string]string{"endpoint": "metrics"}, h.watcher)
	for path, want := range map[string]float64{"total": float64(n + 1), "rate": 1, "failed": float64(failed)} {
		if got := num(t, m.Body, "requests", path); got != want {
			t.Errorf("after rollover requests.%s = %v, want %v", path, got, want)
		}
	}
	if got := num(t, m.Body, "performance", "errorRate"); got != 0 {
		t.Errorf("after rollover errorRate = %v", got)
	}

	// 24 h later minute M has left the totals; the two GETs remain.
	h.fake.Set(minuteM.Add(24*time.Hour + 5*time.Second))
	m = h.get(map[string]string{"endpoint": "metrics"}, h.watcher)
	if got := num(t, m.Body, "requests", "total"); got != 2 {
		t.Errorf("24 h later total = %v, want 2", got)
	}
	if got := num(t, m.Body, "performance", "availability"); got != 100 {
		t.Errorf("24 h later availability = %v", got)
	}
	if got := num(t, m.Body, "traffic", "throttledRequests"); got != 0 {
		t.Errorf("24 h later throttled = %v", got)
	}
}

func TestOverviewAndHealth(t *testing.T) {
	memory := 0.9
	h := newHarness(t, nil, withMemory(&memory))
	app := h.testApp("auth")
	h.fake.Set(minuteM.Add(time.Second))
	// 10 requests, 2 of them failed: error rate 20% (> 5: -20), memory 0.9 (> 0.8: -25).
	for i := 0; i < 10; i++ {
		path := "/t/ok"
		if i < 2 {
			path = "/t/fail"
		}
		call(t, app, event("GET", path, nil, "", "", int64(i)))
	}
	h.fake.Set(minuteM.Add(time.Minute + time.Second))

	o := h.get(nil, h.watcher) // default endpoint: overview
	if o.Status != 200 {
		t.Fatalf("overview: %d %s", o.Status, o.Raw)
	}
	// From 100: memory 0.9 > 0.8 (-25), error rate 20% > 5 (-20): 55, below 70: warning.
	if s := field(t, o.Body, "overview", "status"); s != "warning" {
		t.Errorf("status = %v, want warning", s)
	}
	if got := num(t, o.Body, "overview", "healthScore"); got != 55 {
		t.Errorf("healthScore = %v, want 55", got)
	}
	if got := field(t, o.Body, "overview", "uptime"); got != "80.00%" {
		t.Errorf("uptime = %v", got)
	}
	if got := num(t, o.Body, "performance", "memoryUsage"); got != 90 {
		t.Errorf("memoryUsage = %v, want 90 (integer percent)", got)
	}
	for _, p := range [][]string{{"performance", "cpuUsage"}, {"performance", "diskUsage"}} {
		if v := field(t, o.Body, p...); v != nil {
			t.Errorf("%v = %v, want null", p, v)
		}
	}
	if got := num(t, o.Body, "traffic", "requestsPerMinute"); got != 10 {
		t.Errorf("requestsPerMinute = %v", got)
	}
	if got := num(t, o.Body, "traffic", "totalRequests"); got != 10 {
		t.Errorf("totalRequests = %v", got)
	}
	if _, ok := field(t, o.Body, "alerts").([]any); !ok {
		t.Errorf("alerts = %v, want a list", o.Body["alerts"])
	}
	if v := field(t, o.Body, "traffic", "activeUsers"); v == nil {
		t.Error("activeUsers is null")
	}

	hl := h.get(map[string]string{"endpoint": "health"}, h.watcher)
	if hl.Status != 200 {
		t.Fatalf("health = %d %s", hl.Status, hl.Raw)
	}
	if _, ok := field(t, hl.Body, "alerts").([]any); !ok {
		t.Errorf("health alerts = %v, want a list", hl.Body["alerts"])
	}
	if num(t, hl.Body, "score") != 55 || field(t, hl.Body, "status") != "warning" {
		t.Errorf("health = %s (score 55 is below 70: warning)", hl.Raw)
	}
}

func TestHealthScoreRules(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		cpu, mem, errRate, load *float64
		score                   int
		status                  string
	}{
		{nil, nil, nil, nil, 100, "healthy"},
		{f(0.81), nil, nil, nil, 70, "degraded"},
		{f(0.61), nil, nil, nil, 85, "degraded"},
		{f(0.6), f(0.6), f(1), f(0.8), 100, "healthy"},
		{nil, f(0.81), nil, nil, 75, "degraded"},
		{nil, f(0.61), nil, nil, 90, "healthy"},
		{nil, nil, f(5.1), nil, 80, "degraded"},
		{nil, nil, f(1.1), nil, 90, "healthy"},
		{nil, nil, nil, f(0.81), 85, "degraded"},
		{f(0.9), f(0.9), nil, nil, 45, "critical"},
		{f(0.9), nil, f(6), nil, 50, "warning"},
		{f(0.9), f(0.9), f(6), f(0.9), 10, "critical"},
	}
	for _, tt := range tests {
		score, status := monitorHealth(tt.cpu, tt.mem, tt.errRate, tt.load)
		if score != tt.score || status != tt.status {
			t.Errorf("Health(%v,%v,%v,%v) = %d %s, want %d %s", deref(tt.cpu), deref(tt.mem), deref(tt.errRate), deref(tt.load), score, status, tt.score, tt.status)
		}
	}
}

func withMemory(p *float64) monitorapi.Option {
	return monitorapi.WithMemory(func() *float64 { return p })
}

var monitorHealth = monitor.Health

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestUnreadableLoadLeavesOnlyLoadFiguresNull(t *testing.T) {
	// The overrides table is missing (as with a missing IAM grant): the load
	// cannot be measured, the request figures still can.
	h := newHarness(t, map[string]string{"LOAD_OVERRIDES_TABLE": "no-such-table"})
	h.fake.Set(minuteM.Add(time.Minute))
	m := h.get(map[string]string{"endpoint": "metrics"}, h.watcher)
	if m.Status != 200 {
		t.Fatalf("%d %s", m.Status, m.Raw)
	}
	for _, p := range [][]string{{"traffic", "currentLoad"}, {"traffic", "peakLoad"}, {"resources", "activeConnections"}} {
		if v := field(t, m.Body, p...); v != nil {
			t.Errorf("%v = %v, want null", p, v)
		}
	}
	if got := num(t, m.Body, "requests", "total"); got != 0 {
		t.Errorf("total = %v", got)
	}
}
