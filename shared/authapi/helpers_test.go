package authapi_test

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/authapi"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

const (
	masterName    = "Admin_01"
	allowedOrigin = "https://app.zenith.example"
)

// eventCounter records CountEvent calls (the metrics engineer's counter in production).
type eventCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (e *eventCounter) CountEvent(_ context.Context, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.counts == nil {
		e.counts = map[string]int{}
	}
	e.counts[name]++
}

func (e *eventCounter) count(name string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts[name]
}

type testEnv struct {
	env            *dynamotest.Env
	clock          *clock.Fake
	deps           *platform.Deps
	app            *httpapi.App
	masterPassword string
	logs           *apitest.LogBuffer
	events         *eventCounter
	calls          *store.CallCounter
}

// baseOverrides keeps the API rate limit out of the way of these tests,
// which send many requests from one address under a frozen clock.
func baseOverrides(password string) map[string]string {
	return map[string]string{
		"MASTER_USERNAME":      masterName,
		"MASTER_PASSWORD":      password,
		"RATE_LIMIT_API_RPM":   "1000000",
		"RATE_LIMIT_API_BURST": "1000000",
		"ALLOWED_ORIGINS":      allowedOrigin,
	}
}

func newEnv(t testing.TB, overrides map[string]string) *testEnv {
	t.Helper()
	password := apitest.RandomPassword(t)
	env := dynamotest.New(t, "auth", apitest.Merge(baseOverrides(password), overrides))
	e := &testEnv{env: env, clock: clock.NewFake(apitest.Epoch), masterPassword: password, logs: &apitest.LogBuffer{}, events: &eventCounter{}, calls: &store.CallCounter{}}
	e.deps, e.app = e.start(t, e.calls.Option())
	t.Cleanup(func() {
		if t.Failed() {
			lines := strings.Split(strings.TrimSpace(e.logs.String()), "\n")
			t.Logf("app log (last lines):\n%s", strings.Join(lines[max(0, len(lines)-20):], "\n"))
		}
	})
	return e
}

// start builds a new instance (new client, new caches) on the same tables.
func (e *testEnv) start(t testing.TB, dbOpts ...func(*dynamodb.Options)) (*platform.Deps, *httpapi.App) {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	deps, err := platform.New(ctx, e.env.Config, platform.WithClock(e.clock), platform.WithLogger(logger), platform.WithDynamoDBOptions(dbOpts...),
		platform.WithMetricsOutput(io.Discard), platform.WithEvents(e.events))
	if err != nil {
		t.Fatalf("platform: %v", err)
	}
	app, err := authapi.New(ctx, deps)
	if err != nil {
		t.Fatalf("authapi.New: %v", err)
	}
	return deps, app
}

func (e *testEnv) do(t testing.TB, req apitest.Request) apitest.Response {
	t.Helper()
	return apitest.Do(t, e.app.Handle, req.Event())
}

func loginReq(t testing.TB, username, password string) apitest.Request {
	return apitest.Request{Method: http.MethodPost, Path: "/api/auth", Body: apitest.JSON(t, map[string]any{"action": "login", "username": username, "password": password})}
}

// login logs in and returns the token, failing the test otherwise.
func (e *testEnv) login(t testing.TB, username, password string) string {
	t.Helper()
	return apitest.Login(t, e.app.Handle, username, password)
}

// createUser creates a user through the staff route as the master user.
func (e *testEnv) createUser(t testing.TB, adminToken, username, password, role string) {
	t.Helper()
	res := e.do(t, apitest.Request{Method: http.MethodPost, Path: "/api/auth/users", Headers: apitest.Bearer(adminToken),
		Body: apitest.JSON(t, map[string]any{"username": username, "password": password, "role": role, "name": "Test " + username})})
	if res.Status != http.StatusCreated {
		t.Fatalf("create %s: %d %s", username, res.Status, res.Raw)
	}
}

func (e *testEnv) validateStatus(t testing.TB, tok string) int {
	t.Helper()
	return e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/auth", Headers: apitest.Bearer(tok)}).Status
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func userOf(e *testEnv, username string) (*users.User, error) {
	return users.New(e.env.Client, e.env.Tables.Users, e.clock, nil).Get(context.Background(), username)
}
