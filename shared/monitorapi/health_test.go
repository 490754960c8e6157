package monitorapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	zenith "github.com/zenithfresh/zenith-serverless"
	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/buildinfo"
	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/monitor"
	"github.com/zenithfresh/zenith-serverless/shared/monitorapi"
	"github.com/zenithfresh/zenith-serverless/shared/openapitest"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// healthCheck probes GET /api/health on app, validates the exchange against
// openapi.yaml and checks the health body's shape for its status.
func (h *harness) healthCheck(t *testing.T, v *openapitest.Validator, app *httpapi.App, headers map[string]string) apitest.Response {
	t.Helper()
	ev := apitest.Request{Method: "GET", Path: "/api/health", Headers: headers, RequestID: "health-" + time.Now().Format("150405.000000000")}.Event()
	raw, err := app.Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Check(ev, raw); err != nil {
		t.Errorf("openapi.yaml: %v", err)
	}
	r := apitest.Do(t, app.Handle, ev)
	// The second answer (a cache hit) is the one returned; both were checked alike.
	if err := v.Check(ev, events.APIGatewayV2HTTPResponse{StatusCode: r.Status, Headers: r.Headers, Body: r.Raw}); err != nil {
		t.Errorf("openapi.yaml: %v", err)
	}
	want := map[int][2]string{200: {"ok", "ok"}, 503: {"unavailable", "unreachable"}}[r.Status]
	checks, _ := r.Body["checks"].(map[string]any)
	if want[0] == "" || r.Body["status"] != want[0] || checks["dynamodb"] != want[1] || len(checks) != 1 {
		t.Errorf("health answer %d %s", r.Status, r.Raw)
	}
	if r.Body["version"] != buildinfo.Version || r.Body["requestId"] != ev.RequestContext.RequestID || r.Body["success"] != nil || r.Body["code"] != nil {
		t.Errorf("health body %s", r.Raw)
	}
	if ts, err := time.Parse(time.RFC3339Nano, r.Body["timestamp"].(string)); err != nil || !ts.Equal(h.fake.Now().Truncate(time.Millisecond)) {
		t.Errorf("timestamp %v (%v), want the ISO-8601 form of %v", r.Body["timestamp"], err, h.fake.Now())
	}
	for k := range r.Headers {
		if strings.Contains(strings.ToLower(k), "ratelimit") {
			t.Errorf("health answer carries %s: it passed no limiter", k)
		}
	}
	if r.Status == 503 && r.Headers["Retry-After"] != "5" {
		t.Errorf("503 without Retry-After 5: %v", r.Headers)
	}
	return r
}

func openAPI(t *testing.T) *openapitest.Validator {
	t.Helper()
	v, err := openapitest.Load(zenith.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// GET /api/health: 200 while DynamoDB answers, at most one DynamoDB call per
// instance per 5 s of (fake) time, no limiter quota spent, no session read
// whatever token comes along.
func TestHealthIsCachedFreeAndIgnoresTokens(t *testing.T) {
	// METRICS_REALTIME=off: the recorder writes no counter, so every call
	// counted is the probe's own. An API quota of one request a minute.
	h := newHarness(t, map[string]string{"METRICS_REALTIME": "off", "RATE_LIMIT_API_RPM": "1", "RATE_LIMIT_API_BURST": "0"})
	v := openAPI(t)
	start := minuteM.Add(10 * time.Second)
	h.fake.Set(start)
	tokens := []map[string]string{nil, {"authorization": "Bearer " + h.watcher}, {"authorization": "Bearer session_1_forged"}, {"cookie": "zenith_session=" + h.viewer}}
	h.calls.Reset()
	for i := 0; i < 20; i++ {
		h.healthCheck(t, v, h.app, tokens[i%len(tokens)])
		if i%4 == 3 {
			h.fake.Advance(time.Second)
		}
	}
	// 20 probes × 2 answers over 5 s: one GetItem of the metrics table, nothing else.
	if got := h.calls.Snapshot(); h.calls.Total() != 1 || got["GetItem"] != 1 || h.calls.CountTable(h.env.Tables.Metrics) != 1 {
		t.Errorf("calls in the first 5 s = %v, want one GetItem on the metrics table", got)
	}
	h.fake.Set(start.Add(monitor.ReadinessCacheFor))
	h.calls.Reset()
	h.healthCheck(t, v, h.app, nil)
	if h.calls.Total() != 1 {
		t.Errorf("after 5 s: %v, want one new check", h.calls.Snapshot())
	}
	// The quota of one request is still whole: the first monitor request
	// passes, the second is denied.
	if r := h.get(map[string]string{"endpoint": "alerts"}, h.watcher); r.Status != 200 {
		t.Errorf("first request after the probes: %d %s (the probes spent quota?)", r.Status, r.Raw)
	}
	if r := h.get(map[string]string{"endpoint": "alerts"}, h.watcher); r.Status != 429 {
		t.Errorf("second request: %d, want 429 (RPM 1)", r.Status)
	}
}

func TestHealthWrongMethodIs405(t *testing.T) {
	h := newHarness(t, nil)
	v := openAPI(t)
	for _, m := range []string{"POST", "DELETE", "PUT"} {
		ev := apitest.Request{Method: m, Path: "/api/health", Body: "{}", RequestID: "m-" + m}.Event()
		raw, err := h.app.Handle(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Check(ev, raw); err != nil {
			t.Errorf("openapi.yaml: %v", err)
		}
		r := apitest.Do(t, h.app.Handle, ev)
		if r.Status != 405 || r.Body["success"] != false || r.Body["code"] != "METHOD_NOT_ALLOWED" || r.Headers["Allow"] != "GET" {
			t.Errorf("%s /api/health: %d %v %s", m, r.Status, r.Headers, r.Raw)
		}
	}
}

// With DynamoDB gone the probe answers 503 within one cache period, and
// recovers within one after it is back; an instance that never reached it
// answers 503 from the start, with the same one call per 5 s.
func TestHealthReportsAnUnreachableStore(t *testing.T) {
	h := newHarness(t, map[string]string{"METRICS_REALTIME": "off"})
	v := openAPI(t)
	ctx := context.Background()

	t.Run("an instance pointed at a closed port", func(t *testing.T) {
		cfg := h.env.Config
		cfg.DynamoDBEndpoint = apitest.ClosedURL(t)
		var calls store.CallCounter
		d, err := platform.New(ctx, cfg, platform.WithClock(h.fake), platform.WithLogger(discard),
			platform.WithDynamoDBOptions(calls.Option(), func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }), platform.WithMetricsOutput(h.emf))
		if err != nil {
			t.Fatal(err)
		}
		handler, err := monitorapi.NewHandler(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		start := h.fake.Now()
		for i := 0; i < 5; i++ {
			if r := h.healthCheck(t, v, handler.App(), nil); r.Status != 503 {
				t.Fatalf("probe %d: %d %s", i, r.Status, r.Raw)
			}
			h.fake.Advance(time.Second)
		}
		if calls.Total() != 1 {
			t.Errorf("%d calls in 5 s (%v), want 1: a failure is cached too", calls.Total(), calls.Snapshot())
		}
		if h.fake.Now().Sub(start) != monitor.ReadinessCacheFor {
			t.Fatal("test clock drifted")
		}
		h.healthCheck(t, v, handler.App(), nil)
		if calls.Total() != 2 {
			t.Errorf("after 5 s: %d calls, want a second check", calls.Total())
		}
	})

	t.Run("the store goes away and comes back", func(t *testing.T) {
		p, err := dbproxy.New(h.env.Config.DynamoDBEndpoint)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		d := h.newDeps(func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(p.URL()); o.RetryMaxAttempts = 1 })
		handler, err := monitorapi.NewHandler(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		app := handler.App()
		if r := h.healthCheck(t, v, app, nil); r.Status != 200 {
			t.Fatalf("store up: %d %s", r.Status, r.Raw)
		}
		checked := h.fake.Now()
		if err := p.SetFault(dbproxy.Fault{Kind: dbproxy.Refuse}); err != nil {
			t.Fatal(err)
		}
		h.fake.Set(checked.Add(monitor.ReadinessCacheFor - time.Millisecond))
		if r := h.healthCheck(t, v, app, nil); r.Status != 200 {
			t.Errorf("inside the cache period: %d, want the cached 200", r.Status)
		}
		h.fake.Set(checked.Add(monitor.ReadinessCacheFor))
		if r := h.healthCheck(t, v, app, nil); r.Status != 503 {
			t.Errorf("one cache period after the store went away: %d, want 503", r.Status)
		}
		if err := p.ClearFaults(); err != nil {
			t.Fatal(err)
		}
		h.fake.Advance(monitor.ReadinessCacheFor)
		if r := h.healthCheck(t, v, app, nil); r.Status != 200 {
			t.Errorf("one cache period after the store came back: %d %s", r.Status, r.Raw)
		}
	})
}
