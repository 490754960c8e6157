package authapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/authapi"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// epoch is far in the future, so every ttl written under the fake clock is
// decades away from DynamoDB Local's real-time TTL sweep: expiry seen by a
// test is the read-time check, never a deleted item.
var epoch = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	masterName    = "Admin_01"
	allowedOrigin = "https://app.zenith.example"
)

// randomPassword makes test passwords at run time: none is written in source.
func randomPassword(t testing.TB) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "pw-" + hex.EncodeToString(b)
}

// logBuffer collects the JSON log lines of an app.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

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
	logs           *logBuffer
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
	password := randomPassword(t)
	o := baseOverrides(password)
	for k, v := range overrides {
		o[k] = v
	}
	env := dynamotest.New(t, "auth", o)
	e := &testEnv{env: env, clock: clock.NewFake(epoch), masterPassword: password, logs: &logBuffer{}, events: &eventCounter{}, calls: &store.CallCounter{}}
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
	deps, err := platform.New(ctx, e.env.Config, platform.WithClock(e.clock), platform.WithLogger(logger), platform.WithDynamoDBOptions(dbOpts...))
	if err != nil {
		t.Fatalf("platform: %v", err)
	}
	deps.Events = e.events
	app, err := authapi.New(ctx, deps)
	if err != nil {
		t.Fatalf("authapi.New: %v", err)
	}
	return deps, app
}

type request struct {
	method  string
	path    string
	body    string
	query   map[string]string
	headers map[string]string
	cookies []string
	ip      string
	base64  bool
}

type response struct {
	status  int
	headers map[string]string
	cookies []string
	raw     string
	body    map[string]any
}

func (r response) str(key string) string {
	v, _ := r.body[key].(string)
	return v
}

// get walks a dotted path into the body.
func (r response) get(path string) any {
	var cur any = r.body
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func handle(t testing.TB, app *httpapi.App, req request) response {
	t.Helper()
	if req.ip == "" {
		req.ip = "198.51.100.7"
	}
	ev := events.APIGatewayV2HTTPRequest{
		RawPath:               req.path,
		QueryStringParameters: req.query,
		Headers:               req.headers,
		Cookies:               req.cookies,
		Body:                  req.body,
		IsBase64Encoded:       req.base64,
	}
	ev.RequestContext.HTTP.Method = req.method
	ev.RequestContext.HTTP.Path = req.path
	ev.RequestContext.HTTP.SourceIP = req.ip
	ev.RequestContext.RequestID = httpapi.NewRequestID()
	out, err := app.Handle(context.Background(), ev)
	if err != nil {
		t.Fatalf("Handle returned an error: %v", err)
	}
	res := response{status: out.StatusCode, headers: out.Headers, cookies: out.Cookies, raw: out.Body}
	if err := json.Unmarshal([]byte(out.Body), &res.body); err != nil {
		t.Fatalf("response body is not a JSON object: %q", out.Body)
	}
	return res
}

func (e *testEnv) do(t testing.TB, req request) response {
	t.Helper()
	return handle(t, e.app, req)
}

func jsonBody(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func loginReq(t testing.TB, username, password string) request {
	return request{method: http.MethodPost, path: "/api/auth", body: jsonBody(t, map[string]any{"action": "login", "username": username, "password": password})}
}

// login logs in and returns the token, failing the test otherwise.
func (e *testEnv) login(t testing.TB, username, password string) string {
	t.Helper()
	res := e.do(t, loginReq(t, username, password))
	if res.status != http.StatusOK {
		t.Fatalf("login %s: %d %s", username, res.status, res.raw)
	}
	tok, _ := res.get("session.id").(string)
	if tok == "" {
		t.Fatalf("login gave no token: %s", res.raw)
	}
	return tok
}

func bearer(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }

// createUser creates a user through the staff route as the master user.
func (e *testEnv) createUser(t testing.TB, adminToken, username, password, role string) {
	t.Helper()
	res := e.do(t, request{method: http.MethodPost, path: "/api/auth/users", headers: bearer(adminToken),
		body: jsonBody(t, map[string]any{"username": username, "password": password, "role": role, "name": "Test " + username})})
	if res.status != http.StatusCreated {
		t.Fatalf("create %s: %d %s", username, res.status, res.raw)
	}
}

func (e *testEnv) validateStatus(t testing.TB, tok string) int {
	t.Helper()
	return e.do(t, request{method: http.MethodGet, path: "/api/auth", headers: bearer(tok)}).status
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func userOf(e *testEnv, username string) (*users.User, error) {
	return users.New(e.env.Client, e.env.Tables.Users, e.clock, nil).Get(context.Background(), username)
}
