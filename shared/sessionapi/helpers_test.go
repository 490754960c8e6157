package sessionapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/authapi"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/sessionapi"
)

const (
	masterName    = "root_admin"
	allowedOrigin = "https://app.zenith.example"
)

type testEnv struct {
	env            *dynamotest.Env
	clock          *clock.Fake
	auth, sessions *httpapi.App
	masterPassword string
}

func newEnv(t testing.TB, overrides map[string]string) *testEnv {
	t.Helper()
	pw := apitest.RandomPassword(t)
	o := apitest.Merge(map[string]string{
		"MASTER_USERNAME": masterName, "MASTER_PASSWORD": pw,
		"RATE_LIMIT_API_RPM": "1000000", "RATE_LIMIT_API_BURST": "1000000",
		"ALLOWED_ORIGINS": allowedOrigin,
	}, overrides)
	e := &testEnv{env: dynamotest.New(t, "session", o), clock: clock.NewFake(apitest.Epoch), masterPassword: pw}
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	authDeps, err := platform.New(ctx, e.env.Config, platform.WithClock(e.clock), platform.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	if e.auth, err = authapi.New(ctx, authDeps); err != nil {
		t.Fatal(err)
	}
	e.sessions = e.newSessionApp(t)
	return e
}

// newSessionApp is a separate instance of the session function (its own client and caches).
func (e *testEnv) newSessionApp(t testing.TB) *httpapi.App {
	t.Helper()
	ctx := context.Background()
	deps, err := platform.New(ctx, e.env.Config, platform.WithClock(e.clock), platform.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	app, err := sessionapi.New(ctx, deps)
	if err != nil {
		t.Fatal(err)
	}
	return app
}

// sessionsOf returns the "sessions" list of a listing.
func sessionsOf(r apitest.Response) []map[string]any {
	list, _ := r.Body["sessions"].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, s := range list {
		out = append(out, s.(map[string]any))
	}
	return out
}

// do sends req to the session function.
func (e *testEnv) do(t testing.TB, req apitest.Request) apitest.Response {
	t.Helper()
	return apitest.Do(t, e.sessions.Handle, req.Event())
}

// doAuth sends req to the auth function.
func (e *testEnv) doAuth(t testing.TB, req apitest.Request) apitest.Response {
	t.Helper()
	return apitest.Do(t, e.auth.Handle, req.Event())
}

func (e *testEnv) login(t testing.TB, user, password string) string {
	t.Helper()
	return apitest.Login(t, e.auth.Handle, user, password)
}

func (e *testEnv) createUser(t testing.TB, admin, user, password, role string) {
	t.Helper()
	body := apitest.JSON(t, map[string]string{"username": user, "password": password, "role": role})
	res := e.doAuth(t, apitest.Request{Method: http.MethodPost, Path: "/api/auth/users", Headers: apitest.Bearer(admin), Body: body})
	if res.Status != 201 {
		t.Fatalf("create %s: %d %s", user, res.Status, res.Raw)
	}
}

func (e *testEnv) valid(t testing.TB, tok string) bool {
	t.Helper()
	res := e.doAuth(t, apitest.Request{Method: http.MethodGet, Path: "/api/auth", Headers: apitest.Bearer(tok)})
	return res.Status == 200
}

// handleOf returns the public handle of the caller's current session.
func (e *testEnv) handleOf(t testing.TB, tok string) string {
	t.Helper()
	res := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(tok)})
	for _, s := range sessionsOf(res) {
		if s["current"] == true {
			return s["id"].(string)
		}
	}
	t.Fatalf("no current session in %s", res.Raw)
	return ""
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
