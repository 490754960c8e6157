package sessionapi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zenithfresh/zenith-serverless/shared/authapi"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/sessionapi"
)

var epoch = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	masterName    = "root_admin"
	allowedOrigin = "https://app.zenith.example"
)

func randomPassword(t testing.TB) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "pw-" + hex.EncodeToString(b)
}

type testEnv struct {
	env            *dynamotest.Env
	clock          *clock.Fake
	auth, sessions *httpapi.App
	masterPassword string
}

func newEnv(t testing.TB, overrides map[string]string) *testEnv {
	t.Helper()
	pw := randomPassword(t)
	o := map[string]string{
		"MASTER_USERNAME": masterName, "MASTER_PASSWORD": pw,
		"RATE_LIMIT_API_RPM": "1000000", "RATE_LIMIT_API_BURST": "1000000",
		"ALLOWED_ORIGINS": allowedOrigin,
	}
	for k, v := range overrides {
		o[k] = v
	}
	e := &testEnv{env: dynamotest.New(t, "session", o), clock: clock.NewFake(epoch), masterPassword: pw}
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

type request struct {
	method  string
	path    string
	body    string
	query   map[string]string
	headers map[string]string
	cookies []string
}

type response struct {
	status  int
	headers map[string]string
	cookies []string
	raw     string
	body    map[string]any
}

func (r response) str(k string) string { s, _ := r.body[k].(string); return s }

func (r response) sessions() []map[string]any {
	list, _ := r.body["sessions"].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, s := range list {
		out = append(out, s.(map[string]any))
	}
	return out
}

func handle(t testing.TB, app *httpapi.App, req request) response {
	t.Helper()
	ev := events.APIGatewayV2HTTPRequest{RawPath: req.path, QueryStringParameters: req.query, Headers: req.headers, Cookies: req.cookies, Body: req.body}
	ev.RequestContext.HTTP.Method = req.method
	ev.RequestContext.HTTP.SourceIP = "198.51.100.7"
	out, err := app.Handle(context.Background(), ev)
	if err != nil {
		t.Fatalf("Handle returned an error: %v", err)
	}
	res := response{status: out.StatusCode, headers: out.Headers, cookies: out.Cookies, raw: out.Body}
	if err := json.Unmarshal([]byte(out.Body), &res.body); err != nil {
		t.Fatalf("body is not a JSON object: %q", out.Body)
	}
	return res
}

func (e *testEnv) do(t testing.TB, req request) response {
	t.Helper()
	return handle(t, e.sessions, req)
}

func (e *testEnv) login(t testing.TB, user, password string) string {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"action": "login", "username": user, "password": password})
	res := handle(t, e.auth, request{method: http.MethodPost, path: "/api/auth", body: string(b)})
	if res.status != 200 {
		t.Fatalf("login %s: %d %s", user, res.status, res.raw)
	}
	s, _ := res.body["session"].(map[string]any)
	return s["id"].(string)
}

func (e *testEnv) createUser(t testing.TB, admin, user, password, role string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": user, "password": password, "role": role})
	res := handle(t, e.auth, request{method: http.MethodPost, path: "/api/auth/users", headers: bearer(admin), body: string(b)})
	if res.status != 201 {
		t.Fatalf("create %s: %d %s", user, res.status, res.raw)
	}
}

func (e *testEnv) valid(t testing.TB, tok string) bool {
	t.Helper()
	res := handle(t, e.auth, request{method: http.MethodGet, path: "/api/auth", headers: bearer(tok)})
	return res.status == 200
}

// handleOf returns the public handle of the caller's current session.
func (e *testEnv) handleOf(t testing.TB, tok string) string {
	t.Helper()
	res := e.do(t, request{method: http.MethodGet, path: "/api/sessions", headers: bearer(tok)})
	for _, s := range res.sessions() {
		if s["current"] == true {
			return s["id"].(string)
		}
	}
	t.Fatalf("no current session in %s", res.raw)
	return ""
}

func bearer(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
