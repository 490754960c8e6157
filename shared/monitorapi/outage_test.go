package monitorapi_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/monitorapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
)

// TestColdStartDuringOutage (finding 7): the system monitor starts with
// DynamoDB unreachable and answers 503 SERVICE_UNAVAILABLE with
// Retry-After in each route's envelope.
func TestColdStartDuringOutage(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"DYNAMODB_ENDPOINT": apitest.ClosedURL(t), "AWS_REGION": "us-east-1", "DB_TIMEOUT": "300"}
	cfg, err := config.Load("system-monitor", func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	fake := clock.NewFake(minuteM)
	deps, err := platform.New(context.Background(), cfg, platform.WithClock(fake), platform.WithLogger(discard), platform.WithMetricsOutput(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	app, err := monitorapi.New(context.Background(), deps)
	if err != nil {
		t.Fatalf("system-monitor did not start during the outage: %v", err)
	}
	tok, err := sessions.NewToken("some_user")
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []apitest.Request{
		{Method: http.MethodGet, Path: "/api/system-monitor", Headers: apitest.Bearer(tok), Query: map[string]string{"endpoint": "metrics"}},
		{Method: http.MethodPost, Path: "/api/system-monitor", Headers: apitest.Bearer(tok), Body: `{"requests":{"total":1}}`},
		{Method: http.MethodPost, Path: "/api/system-monitor/alerts/abc/acknowledge", Headers: apitest.Bearer(tok)},
	} {
		fake.Advance(2 * time.Second)
		res := apitest.Do(t, app.Handle, req.Event())
		if res.Status != 503 || res.Str("code") != "SERVICE_UNAVAILABLE" || res.Headers["Retry-After"] == "" {
			t.Errorf("%s %s: %d %v %s", req.Method, req.Path, res.Status, res.Headers, res.Raw)
		}
		if req.Method == http.MethodGet && (res.Body["timestamp"] == nil || res.Body["success"] != nil) {
			t.Errorf("GET answered outside the monitor envelope: %s", res.Raw)
		}
	}
}
