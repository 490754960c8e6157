package monitorapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zenithfresh/zenith-serverless/shared/alerts"
	"github.com/zenithfresh/zenith-serverless/shared/authapi"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/monitorapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
)

func scheduledEvent(t *testing.T) json.RawMessage {
	t.Helper()
	b, err := os.ReadFile("testdata/scheduled-event.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func evaluate(t *testing.T, h *harness) monitorapi.EvaluationResult {
	t.Helper()
	out, err := h.handler.Invoke(context.Background(), scheduledEvent(t))
	if err != nil {
		t.Fatalf("scheduled evaluation: %v", err)
	}
	res, ok := out.(monitorapi.EvaluationResult)
	if !ok {
		t.Fatalf("scheduled evaluation returned %T", out)
	}
	return res
}

func alertList(t *testing.T, h *harness) []map[string]any {
	t.Helper()
	r := h.get(map[string]string{"endpoint": "alerts"}, h.watcher)
	if r.Status != 200 || r.Body["timestamp"] == nil {
		t.Fatalf("alerts: %d %s", r.Status, r.Raw)
	}
	var out []map[string]any
	for _, a := range field(t, r.Body, "alerts").([]any) {
		out = append(out, a.(map[string]any))
	}
	return out
}

func TestScheduledEvaluationRaisesOnceAcknowledgesAndResolves(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	app := h.testApp("auth")
	h.fake.Set(minuteM.Add(time.Second))
	for i := 0; i < 12; i++ { // 12 failed requests (> 10); fewer than 20, so no error-rate alert
		call(t, app, event("GET", "/t/fail", nil, "", "", int64(i)))
	}
	for i := 0; i < 6; i++ { // 6 failed logins (> 5), as the identity code reports them
		h.deps.Recorder.CountEvent(ctx, metrics.EventFailedLogin)
	}

	// Ten concurrent evaluations of minute M (e.g. retried and duplicated schedule deliveries).
	h.fake.Set(minuteM.Add(time.Minute + time.Second))
	var wg sync.WaitGroup
	outs := make([]any, 10)
	errs := make([]error, 10)
	ev := scheduledEvent(t)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = h.handler.Invoke(ctx, ev)
		}()
	}
	wg.Wait()
	raised := map[string]int{}
	for i, out := range outs {
		if errs[i] != nil {
			t.Fatalf("evaluation %d: %v", i, errs[i])
		}
		res := out.(monitorapi.EvaluationResult)
		if res.Window != minuteM.UnixMilli() {
			t.Errorf("window = %d, want minute M", res.Window)
		}
		for _, r := range res.Results {
			if r.Action == alerts.ActionRaised {
				raised[r.Rule]++
			}
		}
	}
	if len(raised) != 2 || raised[alerts.RuleFailedRequests] != 1 || raised[alerts.RuleFailedLogins] != 1 {
		t.Errorf("raised = %v, want failed_requests and failed_logins once each", raised)
	}
	list := alertList(t, h)
	if len(list) != 2 {
		t.Fatalf("alerts = %v", list)
	}
	byRule := map[string]map[string]any{}
	for _, a := range list {
		byRule[a["rule"].(string)] = a
		if a["state"] != "firing" || a["acknowledged"] != false || a["id"] == "" || a["message"] == "" || a["metadata"] == nil {
			t.Errorf("alert = %v", a)
		}
	}
	if byRule[alerts.RuleFailedLogins]["level"] != "critical" || byRule[alerts.RuleFailedRequests]["level"] != "warning" {
		t.Errorf("levels: %v", list)
	}
	if o := h.get(nil, h.watcher); len(field(t, o.Body, "alerts").([]any)) != 2 {
		t.Errorf("overview alerts: %s", o.Raw)
	}

	// Acknowledge twice: the same acknowledged alert.
	id := byRule[alerts.RuleFailedLogins]["id"].(string)
	var acks []map[string]any
	for i := 0; i < 2; i++ {
		h.fake.Advance(time.Second)
		r := h.post("/api/system-monitor/alerts/"+id+"/acknowledge", "", h.watcher)
		if r.Status != 200 || r.Body["success"] != true {
			t.Fatalf("acknowledge %d: %d %s", i, r.Status, r.Raw)
		}
		acks = append(acks, field(t, r.Body, "alert").(map[string]any))
	}
	if acks[0]["acknowledged"] != true || field(t, acks[0], "metadata", "acknowledgedAt") != field(t, acks[1], "metadata", "acknowledgedAt") {
		t.Errorf("acknowledgements differ: %v / %v", acks[0], acks[1])
	}
	if r := h.post("/api/system-monitor/alerts/error_rate-60/acknowledge", "", h.watcher); r.Status != 404 || r.Body["code"] != "NOT_FOUND" || r.Body["success"] != false {
		t.Errorf("unknown id: %d %s", r.Status, r.Raw)
	}
	if r := h.post("/api/system-monitor/alerts/%2e%2e/acknowledge", "", h.watcher); r.Status != 404 {
		t.Errorf("malformed id: %d %s", r.Status, r.Raw)
	}
	if got := alertList(t, h); len(got) != 2 {
		t.Errorf("a firing alert stays listed after acknowledgement: %v", got)
	}

	// Minute M+1 held only the monitor's own successful requests: clean, both resolve.
	h.fake.Set(minuteM.Add(2*time.Minute + time.Second))
	resolved := 0
	for _, r := range evaluate(t, h).Results {
		if r.Action == alerts.ActionResolved {
			resolved++
		}
	}
	if resolved != 2 {
		t.Errorf("resolved = %d, want 2", resolved)
	}
	list = alertList(t, h)
	if len(list) != 1 || list[0]["rule"] != alerts.RuleFailedRequests || list[0]["state"] != "resolved" {
		t.Errorf("after resolution (acknowledged+resolved drops out) = %v", list)
	}
}

func TestMemoryRule(t *testing.T) {
	t.Run("unknown memory size: the rule is disabled", func(t *testing.T) {
		h := newHarness(t, nil)
		h.fake.Set(minuteM.Add(time.Minute + time.Second))
		for _, r := range evaluate(t, h).Results {
			if r.Rule == alerts.RuleMemory && r.Action != alerts.ActionDisabled {
				t.Errorf("memory rule with null input: %s", r.Action)
			}
		}
		m := h.get(map[string]string{"endpoint": "metrics"}, h.watcher)
		if v := field(t, m.Body, "resources", "memoryUsage"); v != nil {
			t.Errorf("memoryUsage = %v, want null", v)
		}
		if len(alertList(t, h)) != 0 {
			t.Error("an alert fired from a null input")
		}
	})
	t.Run("measured over a 1 MB size: critical", func(t *testing.T) {
		// The real gauge: this process uses far more than 1 MB.
		h := newHarness(t, map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1"})
		h.fake.Set(minuteM.Add(time.Minute + time.Second))
		evaluate(t, h)
		list := alertList(t, h)
		if len(list) != 1 || list[0]["rule"] != alerts.RuleMemory || list[0]["level"] != "critical" {
			t.Errorf("alerts = %v", list)
		}
		m := h.get(map[string]string{"endpoint": "metrics"}, h.watcher)
		if v := num(t, m.Body, "resources", "memoryUsage"); v <= 1 {
			t.Errorf("memoryUsage = %v", v)
		}
	})
}

func TestRealtimeOffReportsNullRequestFigures(t *testing.T) {
	h := newHarness(t, map[string]string{"METRICS_REALTIME": "off", "METRICS_HISTORY_SOURCE": "dynamodb"})
	ctx := context.Background()
	for i := 0; i < 6; i++ {
		h.deps.Recorder.CountEvent(ctx, metrics.EventFailedLogin)
	}
	h.fake.Set(minuteM.Add(time.Minute + time.Second))
	m := h.get(map[string]string{"endpoint": "metrics"}, h.watcher)
	for _, p := range [][]string{
		{"requests", "total"}, {"requests", "rate"}, {"performance", "errorRate"}, {"performance", "availability"},
		{"traffic", "currentLoad"}, {"traffic", "peakLoad"}, {"resources", "activeConnections"},
	} {
		if v := field(t, m.Body, p...); v != nil {
			t.Errorf("%v = %v, want null with METRICS_REALTIME=off", p, v)
		}
	}
	o := h.get(nil, h.watcher)
	if got := num(t, o.Body, "overview", "healthScore"); got != 100 {
		t.Errorf("null inputs must take no deduction: score %v", got)
	}
	rules := map[string]alerts.Action{}
	for _, r := range evaluate(t, h).Results {
		rules[r.Rule] = r.Action
	}
	if rules[alerts.RuleFailedLogins] != alerts.ActionRaised || rules[alerts.RuleErrorRate] != alerts.ActionDisabled || rules[alerts.RuleFailedRequests] != alerts.ActionDisabled {
		t.Errorf("rules = %v", rules)
	}
}

func TestInvokeDispatchesOnTheRawEvent(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	raw, err := os.ReadFile("testdata/get-alerts.json")
	if err != nil {
		t.Fatal(err)
	}
	h.fake.Set(minuteM.Add(time.Minute))
	out, err := h.handler.Invoke(ctx, []byte(strings.Replace(string(raw), "TOKEN", h.watcher, 1)))
	if err != nil {
		t.Fatal(err)
	}
	resp, ok := out.(events.APIGatewayV2HTTPResponse)
	if !ok || resp.StatusCode != 200 || resp.Headers["X-Request-ID"] != "fixture-request-id" || !strings.Contains(resp.Body, `"alerts":[]`) {
		t.Errorf("HTTP event: %T %+v", out, out)
	}
	if _, ok := evaluate(t, h), true; !ok {
		t.Error("scheduled event")
	}
	for _, bad := range []string{`{"foo":1}`, `[]`, `"x"`, `{"requestContext":null}`} {
		if _, err := h.handler.Invoke(ctx, []byte(bad)); !errors.Is(err, monitorapi.ErrUnsupportedEvent) {
			t.Errorf("%s: err = %v, want ErrUnsupportedEvent", bad, err)
		}
	}
}

// TestFailedLoginsThroughTheAuthFunctionRaiseTheCriticalAlert runs real
// failed logins through the auth function (the identity code counts them via
// platform.Deps.Events) and the scheduled evaluation raises the alert.
func TestFailedLoginsThroughTheAuthFunctionRaiseTheCriticalAlert(t *testing.T) {
	h := newHarness(t, nil)
	cfg := h.env.Config
	cfg.Function = "auth"
	cfg.MasterUsername, cfg.MasterPassword = "chief", "a-long-master-password"
	d, err := platform.New(context.Background(), cfg, platform.WithClock(h.fake), platform.WithLogger(discard),
		platform.WithMetricsOutput(h.emf), platform.WithMetricsWriteTimeout(emulatorTimeout))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := authapi.New(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	h.fake.Set(minuteM.Add(time.Second))
	for i := 0; i < 6; i++ {
		r := call(t, auth, event("POST", "/api/auth", nil, `{"action":"login","username":"watcher","password":"wrong-password-`+strings.Repeat("x", i)+`"}`, "", int64(i)))
		if r.Status != 401 || r.Body["code"] != "INVALID_CREDENTIALS" {
			t.Fatalf("login %d: %d %s", i, r.Status, r.Raw)
		}
		h.fake.Advance(5 * time.Second) // past each lockout step
	}
	h.fake.Set(minuteM.Add(time.Minute + time.Second))
	raised := map[string]bool{}
	for _, r := range evaluate(t, h).Results {
		raised[r.Rule] = r.Action == alerts.ActionRaised
	}
	if !raised[alerts.RuleFailedLogins] {
		t.Fatalf("failed_logins not raised: %v", raised)
	}
	list := alertList(t, h)
	if len(list) != 1 || list[0]["level"] != "critical" || num(t, list[0], "metadata", "value") != 6 {
		t.Errorf("alerts = %v", list)
	}
}
