package monitorapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/alerts"
	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/trafficapi"
)

// With RATE_LIMIT_STATUS=503 a limiter denial is a 503 RATE_LIMIT: the
// opt-in spelling of the same throttle. Through the real traffic-manager and
// system-monitor apps on one set of tables, such denials count as throttled,
// never as failed: availability and the error rate see only the one real
// failure, and the failed-requests and error-rate rules stay quiet.
func TestRateLimitAnswered503CountsAsThrottled(t *testing.T) {
	h := newHarness(t, map[string]string{"RATE_LIMIT_STATUS": "503", "RATE_LIMIT_RPM": "1", "RATE_LIMIT_BURST": "0"})
	d := h.newDeps()
	d.Function = "traffic-manager"
	traffic, err := trafficapi.New(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	auth := h.testApp("auth")

	h.fake.Set(minuteM.Add(time.Second))
	h.emf.Reset()
	const denials = 24 // > 10 failed and ≥ 20 requests: both rules would fire on them
	for i := 0; i <= denials; i++ {
		res := apitest.Do(t, traffic.Handle, apitest.Request{Method: "GET", Path: trafficapi.Path, SourceIP: "203.0.113.9"}.Event())
		want, code := 503, "RATE_LIMIT"
		if i == 0 { // RPM 1, no burst: the first is admitted
			want, code = 200, ""
		}
		if res.Status != want || (code != "" && res.Body["code"] != code) {
			t.Fatalf("request %d: %d %v, want %d %s", i, res.Status, res.Body, want, code)
		}
	}
	// One real failure: a store outage answered 503 SERVICE_UNAVAILABLE.
	if r := call(t, auth, event("GET", "/t/down", nil, "", "", 1)); r.Status != 503 || r.Body["code"] != "SERVICE_UNAVAILABLE" {
		t.Fatalf("/t/down: %d %s", r.Status, r.Raw)
	}
	total := denials + 2

	// The EMF lines (CloudWatch's history and dashboards) classify the same way.
	var lines, throttledLines, failedLines int
	sc := bufio.NewScanner(bytes.NewReader(h.emf.Bytes()))
	for sc.Scan() {
		var doc struct {
			Status    int
			Code      string
			Errors5xx int
			Throttled int
		}
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		lines++
		throttledLines += doc.Throttled
		failedLines += doc.Errors5xx
		if doc.Code == "RATE_LIMIT" && (doc.Status != 503 || doc.Errors5xx != 0 || doc.Throttled != 1) {
			t.Errorf("denial line %s: want Errors5xx 0, Throttled 1", sc.Bytes())
		}
	}
	if lines != total || throttledLines != denials || failedLines != 1 {
		t.Errorf("EMF: %d lines, %d throttled, %d failed; want %d, %d, 1", lines, throttledLines, failedLines, total, denials)
	}

	h.fake.Set(minuteM.Add(time.Minute + 5*time.Second)) // minute M is the last complete minute
	m := h.get(map[string]string{"endpoint": "metrics"}, h.watcher)
	if m.Status != 200 {
		t.Fatalf("metrics: %d %s", m.Status, m.Raw)
	}
	for _, c := range []struct {
		path []string
		want float64
	}{
		{[]string{"requests", "total"}, float64(total)},
		{[]string{"requests", "failed"}, 1},
		{[]string{"requests", "successful"}, 1},
		{[]string{"traffic", "throttledRequests"}, denials},
		{[]string{"performance", "availability"}, 100 * (1 - 1/float64(total))},
		{[]string{"performance", "errorRate"}, 1 / float64(total) * 100},
	} {
		if got := num(t, m.Body, c.path...); got != c.want {
			t.Errorf("%v = %v, want %v", c.path, got, c.want)
		}
	}
	for _, r := range evaluate(t, h).Results {
		if r.Action != alerts.ActionNone && r.Action != alerts.ActionDisabled {
			t.Errorf("rule %s: %s on throttled requests", r.Rule, r.Action)
		}
	}
	if list := alertList(t, h); len(list) != 0 {
		t.Errorf("alerts = %v, want none", list)
	}
}
