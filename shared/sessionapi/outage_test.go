package sessionapi_test

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
	"github.com/zenithfresh/zenith-serverless/shared/sessionapi"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
)

// TestColdStartDuringOutage (finding 7): the session function starts with
// DynamoDB unreachable and answers the contract's 503 SERVICE_UNAVAILABLE
// with Retry-After on the routes that need the store.
func TestColdStartDuringOutage(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"DYNAMODB_ENDPOINT": apitest.ClosedURL(t), "AWS_REGION": "us-east-1", "DB_TIMEOUT": "300"}
	cfg, err := config.Load("session", func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	fake := clock.NewFake(apitest.Epoch)
	deps, err := platform.New(context.Background(), cfg, platform.WithClock(fake), platform.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	app, err := sessionapi.New(context.Background(), deps)
	if err != nil {
		t.Fatalf("session did not start during the outage: %v", err)
	}
	tok, err := sessions.NewToken("some_user")
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []apitest.Request{
		{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(tok)},
		{Method: http.MethodGet, Path: "/api/sessions/count", Headers: apitest.Bearer(tok)},
		{Method: http.MethodDelete, Path: "/api/sessions/0123456789abcdef", Headers: apitest.Bearer(tok)},
		{Method: http.MethodDelete, Path: "/api/sessions", Headers: apitest.Bearer(tok)},
	} {
		fake.Advance(2 * time.Second) // past the breaker's cooldown: each request tries the store
		res := apitest.Do(t, app.Handle, req.Event())
		if res.Status != 503 || res.Str("code") != "SERVICE_UNAVAILABLE" || res.Headers["Retry-After"] == "" || res.Body["success"] != false {
			t.Errorf("%s %s: %d %v %s", req.Method, req.Path, res.Status, res.Headers, res.Raw)
		}
	}
	if res := apitest.Do(t, app.Handle, apitest.Request{Method: http.MethodGet, Path: "/api/sessions"}.Event()); res.Status != 401 {
		t.Errorf("no token during the outage: %d %s", res.Status, res.Raw)
	}
}
