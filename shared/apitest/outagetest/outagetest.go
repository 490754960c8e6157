// Package outagetest starts a function's app while DynamoDB is unreachable
// and checks its answers (issue 10, finding 7: init needs no store, and every
// route that needs it answers the contract's 503). Its own package because
// it builds platform.Deps, which apitest's users inside domain packages
// cannot import.
package outagetest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
)

// Stack is a function's app built during an outage, on a fake clock.
type Stack struct {
	App   *httpapi.App
	Clock *clock.Fake
}

// Start builds function's config (DYNAMODB_ENDPOINT a closed port, DB_TIMEOUT
// 300 ms, plus vars), its deps on a fake clock at start and its app with
// build; building must succeed without the store.
func Start(t *testing.T, function string, start time.Time, vars map[string]string,
	build func(context.Context, *platform.Deps) (*httpapi.App, error)) *Stack {
	t.Helper()
	env := map[string]string{"DYNAMODB_ENDPOINT": apitest.ClosedURL(t), "AWS_REGION": "us-east-1", "DB_TIMEOUT": "300"}
	for k, v := range vars {
		env[k] = v
	}
	cfg, err := config.Load(function, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	fake := clock.NewFake(start)
	deps, err := platform.New(context.Background(), cfg, platform.WithClock(fake),
		platform.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), platform.WithMetricsOutput(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	app, err := build(context.Background(), deps)
	if err != nil {
		t.Fatalf("%s did not start during the outage: %v", function, err)
	}
	return &Stack{App: app, Clock: fake}
}

// Do sends req after moving the clock past the store breaker's cooldown, so
// that each request tries the store.
func (s *Stack) Do(t *testing.T, req apitest.Request) apitest.Response {
	t.Helper()
	s.Clock.Advance(2 * time.Second)
	return apitest.Do(t, s.App.Handle, req.Event())
}

// ExpectUnavailable sends each request and checks the contract's answer to
// a store outage: 503 SERVICE_UNAVAILABLE with Retry-After. It returns the
// answers for checks of each route's envelope.
func (s *Stack) ExpectUnavailable(t *testing.T, reqs ...apitest.Request) []apitest.Response {
	t.Helper()
	out := make([]apitest.Response, len(reqs))
	for i, req := range reqs {
		res := s.Do(t, req)
		if res.Status != 503 || res.Str("code") != "SERVICE_UNAVAILABLE" || res.Headers["Retry-After"] == "" {
			t.Errorf("%s %s %v during the outage: %d %v %s", req.Method, req.Path, req.Query, res.Status, res.Headers, res.Raw)
		}
		out[i] = res
	}
	return out
}
