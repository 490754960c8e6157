package trafficapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/trafficapi"
)

// TestColdStartDuringOutage (finding 7): the traffic-manager starts with
// DynamoDB unreachable; what needs the store answers 503
// SERVICE_UNAVAILABLE with Retry-After (the front door too when
// RATE_LIMIT_FAIL_MODE is closed), and the status stays answerable.
func TestColdStartDuringOutage(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"open", "closed"} {
		t.Run(mode, func(t *testing.T) {
			vars := map[string]string{"DYNAMODB_ENDPOINT": apitest.ClosedURL(t), "AWS_REGION": "us-east-1", "DB_TIMEOUT": "300", "RATE_LIMIT_FAIL_MODE": mode}
			cfg, err := config.Load("traffic-manager", func(k string) string { return vars[k] })
			if err != nil {
				t.Fatal(err)
			}
			fake := clock.NewFake(base)
			deps, err := platform.New(context.Background(), cfg, platform.WithClock(fake), platform.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), platform.WithMetricsOutput(io.Discard))
			if err != nil {
				t.Fatal(err)
			}
			app, err := trafficapi.New(context.Background(), deps)
			if err != nil {
				t.Fatalf("traffic-manager did not start during the outage: %v", err)
			}
			tok, err := sessions.NewToken("some_user")
			if err != nil {
				t.Fatal(err)
			}
			unavailable := []apitest.Request{
				{Method: http.MethodPost, Path: "/api/traffic-manager", Headers: apitest.Bearer(tok), Body: `{"simulateLoad":true}`},
				{Method: http.MethodGet, Path: "/api/traffic-manager", Headers: apitest.Bearer(tok)},
			}
			if mode == "closed" {
				unavailable = append(unavailable, apitest.Request{Method: http.MethodGet, Path: "/api/traffic-manager"})
			}
			for _, req := range unavailable {
				fake.Advance(2 * time.Second)
				res := apitest.Do(t, app.Handle, req.Event())
				if res.Status != 503 || res.Str("code") != "SERVICE_UNAVAILABLE" || res.Headers["Retry-After"] == "" {
					t.Errorf("%s %s %v: %d %v %s", req.Method, req.Path, req.Query, res.Status, res.Headers, res.Raw)
				}
			}
			fake.Advance(2 * time.Second)
			if res := apitest.Do(t, app.Handle, apitest.Request{Method: http.MethodGet, Path: "/api/traffic-manager", Query: map[string]string{"status": "true"}}.Event()); res.Status != 200 || res.Body["status"] != "degraded" {
				t.Errorf("status during the outage: %d %s", res.Status, res.Raw)
			}
		})
	}
}
