package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/ratelimit"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

type echoBody struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
	On    bool   `json:"on"`
}

// tokens maps test tokens to principals; the layer only sees the interface.
type tokens map[string]*sessions.Principal

func (t tokens) KnownUser(string) (string, bool) { return "", false }

func (t tokens) Resolve(_ context.Context, token string) (*sessions.Principal, error) {
	if token == "down" {
		return nil, fmt.Errorf("resolve: %w", store.ErrUnavailable)
	}
	return t[token], nil
}

type recorder struct{ obs []metrics.Observation }

func (r *recorder) Start(context.Context) func() { return func() {} }

func (r *recorder) Record(_ context.Context, o metrics.Observation) { r.obs = append(r.obs, o) }

// denyAll refuses every request: one allowed per window, next in 1.5 s.
type denyAll struct{ calls int }

func (d *denyAll) CachedDeny(context.Context, string, string) bool { return false }

func (d *denyAll) Limit(_ context.Context, policy, _ string) (ratelimit.Decision, error) {
	d.calls++
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	return ratelimit.Decision{
		Policy: policy, Limit: 1, Window: time.Minute, Reset: now.Add(1500 * time.Millisecond),
		RetryAfter: 1500 * time.Millisecond, At: now,
	}, nil
}

func newApp(env httpapi.Envelope, rec *recorder) *httpapi.App {
	return &httpapi.App{
		Function: "test",
		Routes: []httpapi.Route{
			{Method: http.MethodPost, Path: "/api/test", Handler: func(_ context.Context, r *httpapi.Request) (*httpapi.Response, error) {
				var b echoBody
				if err := r.DecodeJSON(&b); err != nil {
					return nil, err
				}
				return httpapi.JSON(http.StatusOK, map[string]any{"success": true, "name": b.Name}), nil
			}},
			{Method: http.MethodGet, Path: "/api/test", Handler: func(_ context.Context, r *httpapi.Request) (*httpapi.Response, error) {
				return httpapi.JSON(http.StatusOK, struct {
					OK bool `json:"ok"`
				}{true}), nil
			}},
			{Method: http.MethodGet, Path: "/api/test/items/{id}", Handler: func(_ context.Context, r *httpapi.Request) (*httpapi.Response, error) {
				return httpapi.JSON(http.StatusOK, map[string]any{"id": r.Params["id"]}), nil
			}},
			{Method: http.MethodDelete, Path: "/api/test/items/{id}", Permission: httpapi.Authenticated, Handler: func(_ context.Context, r *httpapi.Request) (*httpapi.Response, error) {
				return httpapi.JSON(http.StatusOK, map[string]any{"deleted": r.Params["id"], "by": r.Principal.UserID}), nil
			}},
			{Method: http.MethodGet, Path: "/api/test/admin", Permission: "userManagement", Handler: func(context.Context, *httpapi.Request) (*httpapi.Response, error) {
				return httpapi.JSON(http.StatusOK, map[string]any{"admin": true}), nil
			}},
			{Method: http.MethodGet, Path: "/api/test/boom", Handler: func(context.Context, *httpapi.Request) (*httpapi.Response, error) {
				return nil, errors.New("dynamodb: secret internal detail arn:aws:xyz")
			}},
			{Method: http.MethodGet, Path: "/api/test/panic", Handler: func(context.Context, *httpapi.Request) (*httpapi.Response, error) {
				var m map[string]int
				//lint:ignore SA5000 a deliberate bug: the layer must turn the panic into a 500
				m["x"] = 1
				return nil, nil
			}},
			{Method: http.MethodGet, Path: "/api/test/down", Handler: func(context.Context, *httpapi.Request) (*httpapi.Response, error) {
				return nil, fmt.Errorf("get item: %w", context.DeadlineExceeded)
			}},
		},
		EnvelopeFor: func(string) httpapi.Envelope { return env },
		Sessions: tokens{
			"admin-token": {UserID: "u1", Permissions: map[string]bool{"userManagement": true}},
			"user-token":  {UserID: "u2", Permissions: map[string]bool{}},
		},
		Recorder:       rec,
		Clock:          clock.NewFake(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)),
		AllowedOrigins: []string{"https://app.zenith.example"},
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func event(method, path, body string) events.APIGatewayV2HTTPRequest {
	return apitest.Request{Method: method, Path: path, Body: body, Headers: map[string]string{"content-type": "application/json"},
		SourceIP: "203.0.113.9", RequestID: "req-1"}.Event()
}

func TestRequestLayerErrors(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := []struct {
		name    string
		ev      func() events.APIGatewayV2HTTPRequest
		status  int
		code    string
		details string
	}{
		{"empty body", func() events.APIGatewayV2HTTPRequest { return event("POST", "/api/test", "") }, 400, "EMPTY_BODY", ""},
		{"whitespace body", func() events.APIGatewayV2HTTPRequest { return event("POST", "/api/test", " \n\t ") }, 400, "EMPTY_BODY", ""},
		{"invalid json", func() events.APIGatewayV2HTTPRequest { return event("POST", "/api/test", `{"name":`) }, 400, "JSON_PARSE_ERROR", ""},
		{"trailing garbage", func() events.APIGatewayV2HTTPRequest { return event("POST", "/api/test", `{"name":"a"} {}`) }, 400, "JSON_PARSE_ERROR", ""},
		{"array body", func() events.APIGatewayV2HTTPRequest { return event("POST", "/api/test", `[1,2]`) }, 400, "INVALID_BODY_TYPE", ""},
		{"string body", func() events.APIGatewayV2HTTPRequest { return event("POST", "/api/test", `"x"`) }, 400, "INVALID_BODY_TYPE", ""},
		{"null body", func() events.APIGatewayV2HTTPRequest { return event("POST", "/api/test", `null`) }, 400, "INVALID_BODY_TYPE", ""},
		{"unknown field", func() events.APIGatewayV2HTTPRequest { return event("POST", "/api/test", `{"name":"a","evil":1}`) }, 400, "VALIDATION_ERROR", `unknown field "evil"`},
		{"wrong type", func() events.APIGatewayV2HTTPRequest { return event("POST", "/api/test", `{"count":"ten"}`) }, 400, "VALIDATION_ERROR", "count must be of type integer"},
		{"wrong bool", func() events.APIGatewayV2HTTPRequest { return event("POST", "/api/test", `{"on":1}`) }, 400, "VALIDATION_ERROR", "on must be of type boolean"},
		{"too large", func() events.APIGatewayV2HTTPRequest {
			return event("POST", "/api/test", `{"name":"`+strings.Repeat("a", httpapi.MaxBodyBytes)+`"}`)
		}, 413, "PAYLOAD_TOO_LARGE", ""},
		{"too large once decoded from base64", func() events.APIGatewayV2HTTPRequest {
			ev := event("POST", "/api/test", b64(`{"name":"`+strings.Repeat("a", httpapi.MaxBodyBytes)+`"}`))
			ev.IsBase64Encoded = true
			return ev
		}, 413, "PAYLOAD_TOO_LARGE", ""},
		{"base64 invalid json", func() events.APIGatewayV2HTTPRequest {
			ev := event("POST", "/api/test", b64(`{"name":`))
			ev.IsBase64Encoded = true
			return ev
		}, 400, "JSON_PARSE_ERROR", ""},
		{"base64 broken encoding", func() events.APIGatewayV2HTTPRequest {
			ev := event("POST", "/api/test", "%%%not-base64")
			ev.IsBase64Encoded = true
			return ev
		}, 400, "JSON_PARSE_ERROR", ""},
		{"unknown sub-path", func() events.APIGatewayV2HTTPRequest { return event("GET", "/api/test/nope", "") }, 404, "NOT_FOUND", ""},
		{"unknown deep path", func() events.APIGatewayV2HTTPRequest { return event("GET", "/api/test/items/1/x", "") }, 404, "NOT_FOUND", ""},
		{"wrong method", func() events.APIGatewayV2HTTPRequest { return event("PUT", "/api/test", "{}") }, 405, "METHOD_NOT_ALLOWED", ""},
		{"no session", func() events.APIGatewayV2HTTPRequest { return event("DELETE", "/api/test/items/7", "") }, 401, "UNAUTHORIZED", ""},
		{"invalid session", func() events.APIGatewayV2HTTPRequest {
			ev := event("DELETE", "/api/test/items/7", "")
			ev.Headers["authorization"] = "Bearer unknown"
			return ev
		}, 401, "UNAUTHORIZED", ""},
		{"no permission", func() events.APIGatewayV2HTTPRequest {
			ev := event("GET", "/api/test/admin", "")
			ev.Headers["authorization"] = "Bearer user-token"
			return ev
		}, 403, "FORBIDDEN", ""},
		{"cookie without origin", func() events.APIGatewayV2HTTPRequest {
			ev := event("DELETE", "/api/test/items/7", "")
			ev.Cookies = []string{"zenith_session=admin-token"}
			return ev
		}, 403, "CSRF_REJECTED", ""},
		{"cookie with foreign origin", func() events.APIGatewayV2HTTPRequest {
			ev := event("DELETE", "/api/test/items/7", "")
			ev.Cookies = []string{"zenith_session=admin-token"}
			ev.Headers["origin"] = "https://evil.example"
			return ev
		}, 403, "CSRF_REJECTED", ""},
		{"internal error", func() events.APIGatewayV2HTTPRequest { return event("GET", "/api/test/boom", "") }, 500, "INTERNAL_ERROR", ""},
		{"panic", func() events.APIGatewayV2HTTPRequest { return event("GET", "/api/test/panic", "") }, 500, "INTERNAL_ERROR", ""},
		{"store timeout", func() events.APIGatewayV2HTTPRequest { return event("GET", "/api/test/down", "") }, 503, "SERVICE_UNAVAILABLE", ""},
		{"session store down", func() events.APIGatewayV2HTTPRequest {
			ev := event("GET", "/api/test", "")
			ev.Headers["authorization"] = "Bearer down"
			return ev
		}, 503, "SERVICE_UNAVAILABLE", ""},
	}
	for _, env := range []httpapi.Envelope{httpapi.EnvelopeStandard, httpapi.EnvelopeMonitor, httpapi.EnvelopeTraffic} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("envelope%d/%s", env, tc.name), func(t *testing.T) {
				rec := &recorder{}
				resp, err := newApp(env, rec).Handle(context.Background(), tc.ev())
				if err != nil {
					t.Fatalf("handler returned error %v; want (response, nil)", err)
				}
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.status, resp.Body)
				}
				body := apitest.Read(t, resp).Body
				if body["code"] != tc.code {
					t.Errorf("code %v, want %s", body["code"], tc.code)
				}
				if body["requestId"] != "req-1" || resp.Headers["X-Request-ID"] != "req-1" {
					t.Errorf("request id missing: body %v headers %v", body["requestId"], resp.Headers)
				}
				if resp.Headers["Content-Type"] != "application/json" || resp.Headers["Cache-Control"] != "no-cache, no-store, must-revalidate" {
					t.Errorf("headers %v", resp.Headers)
				}
				assertEnvelope(t, env, body)
				if tc.details != "" {
					ds, _ := body["details"].([]any)
					if len(ds) == 0 || ds[0] != tc.details {
						t.Errorf("details %v, want %q", body["details"], tc.details)
					}
				}
				if tc.status >= 500 && (strings.Contains(resp.Body, "arn:aws") || strings.Contains(resp.Body, "secret") || strings.Contains(resp.Body, "deadline")) {
					t.Errorf("5xx body leaks internals: %s", resp.Body)
				}
				if tc.status == 503 && resp.Headers["Retry-After"] == "" {
					t.Error("503 without Retry-After")
				}
				if tc.status == 405 && resp.Headers["Allow"] == "" {
					t.Error("405 without Allow")
				}
				if len(rec.obs) != 1 || rec.obs[0].Status != tc.status {
					t.Errorf("recorded %+v, want one observation with status %d", rec.obs, tc.status)
				}
			})
		}
	}
}

func assertEnvelope(t *testing.T, env httpapi.Envelope, body map[string]any) {
	t.Helper()
	switch env {
	case httpapi.EnvelopeStandard:
		if body["success"] != false || body["error"] == nil {
			t.Errorf("standard envelope wrong: %v", body)
		}
	case httpapi.EnvelopeMonitor:
		if _, ok := body["error"].(string); !ok || body["timestamp"] == nil || body["success"] != nil {
			t.Errorf("monitor envelope wrong: %v", body)
		}
	case httpapi.EnvelopeTraffic:
		if body["error"] != true || body["message"] == nil || body["timestamp"] == nil {
			t.Errorf("traffic envelope wrong: %v", body)
		}
	}
}

func TestRequestLayerSuccess(t *testing.T) {
	cases := []struct {
		name   string
		ev     func() events.APIGatewayV2HTTPRequest
		expect map[string]any
	}{
		{"plain body", func() events.APIGatewayV2HTTPRequest { return event("POST", "/api/test", `{"name":"zed"}`) }, map[string]any{"name": "zed", "success": true}},
		{"base64 body", func() events.APIGatewayV2HTTPRequest {
			ev := event("POST", "/api/test", base64.StdEncoding.EncodeToString([]byte(`{"name":"b64"}`)))
			ev.IsBase64Encoded = true
			return ev
		}, map[string]any{"name": "b64"}},
		{"struct body gets requestId", func() events.APIGatewayV2HTTPRequest { return event("GET", "/api/test", "") }, map[string]any{"ok": true}},
		{"trailing slash", func() events.APIGatewayV2HTTPRequest { return event("GET", "/api/test/", "") }, map[string]any{"ok": true}},
		{"path parameter", func() events.APIGatewayV2HTTPRequest { return event("GET", "/api/test/items/abc", "") }, map[string]any{"id": "abc"}},
		{"bearer beats cookie", func() events.APIGatewayV2HTTPRequest {
			ev := event("DELETE", "/api/test/items/9", "")
			ev.Headers["authorization"] = "Bearer admin-token"
			ev.Cookies = []string{"zenith_session=user-token"}
			return ev
		}, map[string]any{"by": "u1"}},
		{"cookie with allowed origin", func() events.APIGatewayV2HTTPRequest {
			ev := event("DELETE", "/api/test/items/9", "")
			ev.Cookies = []string{"zenith_session=user-token"}
			ev.Headers["origin"] = "https://APP.zenith.example"
			return ev
		}, map[string]any{"by": "u2"}},
		{"cookie header form", func() events.APIGatewayV2HTTPRequest {
			ev := event("DELETE", "/api/test/items/9", "")
			ev.Headers["cookie"] = "a=b; zenith_session=user-token"
			ev.Headers["origin"] = "https://app.zenith.example"
			return ev
		}, map[string]any{"by": "u2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := newApp(httpapi.EnvelopeStandard, &recorder{}).Handle(context.Background(), tc.ev())
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("got %d %v: %s", resp.StatusCode, err, resp.Body)
			}
			body := apitest.Read(t, resp).Body
			for k, v := range tc.expect {
				if body[k] != v {
					t.Errorf("%s = %v, want %v", k, body[k], v)
				}
			}
			if body["requestId"] != "req-1" {
				t.Errorf("requestId = %v", body["requestId"])
			}
		})
	}
}

func TestLimiterRunsBeforeRoutingAndHeadersStay(t *testing.T) {
	app := newApp(httpapi.EnvelopeTraffic, &recorder{})
	lim := &denyAll{}
	app.Limiter = lim
	resp, _ := app.Handle(context.Background(), event("GET", "/api/test/nope", ""))
	if resp.StatusCode != 429 || lim.calls != 1 {
		t.Fatalf("status %d calls %d, want 429 after one limiter call", resp.StatusCode, lim.calls)
	}
	body := apitest.Read(t, resp).Body
	if body["code"] != "RATE_LIMIT" || body["severity"] != "low" || body["error"] != true {
		t.Errorf("deny body %v", body)
	}
	if resp.Headers["Retry-After"] != "2" || resp.Headers["X-RateLimit-Limit"] != "1" {
		t.Errorf("headers %v", resp.Headers)
	}
	app.PolicyFor = func(*httpapi.Request) string { return httpapi.PolicyNone }
	resp, _ = app.Handle(context.Background(), event("GET", "/api/test", ""))
	if resp.StatusCode != 200 || lim.calls != 1 {
		t.Errorf("PolicyNone spent the limiter: status %d calls %d", resp.StatusCode, lim.calls)
	}
}

type allowAll struct{}

func (allowAll) CachedDeny(context.Context, string, string) bool { return false }

func (allowAll) Limit(_ context.Context, policy, _ string) (ratelimit.Decision, error) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	return ratelimit.Decision{Policy: policy, Allowed: true, Limit: 9, Window: time.Minute, Remaining: 8, Reset: now.Add(time.Second), At: now}, nil
}

// The recorder learns the route even of a denied request, the answer's code
// (RATE_LIMIT marks throttling whatever the status) and whether the request
// spent quota and was admitted (what the load signal counts).
func TestObservationsCarryRouteCodeAndAdmission(t *testing.T) {
	cases := []struct {
		name     string
		limiter  httpapi.Limiter
		policy   string
		path     string
		status   int
		route    string
		code     string
		admitted bool
	}{
		{"denied on a known route", &denyAll{}, ratelimit.PolicyAPI, "/api/test/items/7", 429, "/api/test/items/{id}", "RATE_LIMIT", false},
		{"denied on an unknown path", &denyAll{}, ratelimit.PolicyAPI, "/api/test/none", 429, "unmatched", "RATE_LIMIT", false},
		{"admitted", allowAll{}, ratelimit.PolicyAPI, "/api/test/items/7", 200, "/api/test/items/{id}", "", true},
		{"admitted then 404", allowAll{}, ratelimit.PolicyAPI, "/api/test/none", 404, "unmatched", "NOT_FOUND", true},
		{"free probe", allowAll{}, httpapi.PolicyNone, "/api/test/items/7", 200, "/api/test/items/{id}", "", false},
		{"handler error", allowAll{}, ratelimit.PolicyAPI, "/api/test/boom", 500, "/api/test/boom", "INTERNAL_ERROR", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			app := newApp(httpapi.EnvelopeStandard, rec)
			app.Limiter = tc.limiter
			app.PolicyFor = func(*httpapi.Request) string { return tc.policy }
			resp, _ := app.Handle(context.Background(), event("GET", tc.path, ""))
			if resp.StatusCode != tc.status || len(rec.obs) != 1 {
				t.Fatalf("status %d, %d observations", resp.StatusCode, len(rec.obs))
			}
			o := rec.obs[0]
			if o.Route != tc.route || o.Code != tc.code || o.Admitted != tc.admitted || o.Status != tc.status {
				t.Errorf("observation %+v, want route %q code %q admitted %v", o, tc.route, tc.code, tc.admitted)
			}
		})
	}
}

func TestRequestIDGeneratedLocally(t *testing.T) {
	ev := event("GET", "/api/test", "")
	ev.RequestContext.RequestID = ""
	resp, _ := newApp(httpapi.EnvelopeStandard, &recorder{}).Handle(context.Background(), ev)
	id := resp.Headers["X-Request-ID"]
	if len(id) != 32 || apitest.Read(t, resp).Body["requestId"] != id {
		t.Errorf("generated id %q, body %s", id, resp.Body)
	}
}

func TestQueryTokenOnlyWhereAllowed(t *testing.T) {
	app := newApp(httpapi.EnvelopeStandard, &recorder{})
	ev := event("DELETE", "/api/test/items/1", "")
	ev.QueryStringParameters = map[string]string{"sessionId": "admin-token"}
	resp, _ := app.Handle(context.Background(), ev)
	if resp.StatusCode != 401 {
		t.Fatalf("query token accepted without QueryToken: %d", resp.StatusCode)
	}
	app.QueryToken = func(*httpapi.Request) bool { return true }
	resp, _ = app.Handle(context.Background(), ev)
	if resp.StatusCode != 200 {
		t.Fatalf("query token refused with QueryToken: %d %s", resp.StatusCode, resp.Body)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{0, "1"}, {time.Millisecond, "1"}, {time.Second, "1"}, {1001 * time.Millisecond, "2"}, {30 * time.Second, "30"}, {-time.Second, "1"}} {
		if got := httpapi.RetryAfterSeconds(tc.d); got != tc.want {
			t.Errorf("RetryAfterSeconds(%v) = %s, want %s", tc.d, got, tc.want)
		}
	}
}

func FuzzHandle(f *testing.F) {
	f.Add("POST", "/api/test", `{"name":"a"}`, false, "")
	f.Add("POST", "/api/test", `[`, false, "Bearer admin-token")
	f.Add("DELETE", "/api/test/items/x", ``, false, "zenith_session=admin-token")
	f.Add("GET", "/api/test/items/%00", `e30=`, true, "")
	f.Add("PATCH", "//api//test", `{"count":1e400}`, false, "")
	f.Add("POST", "/api/test", `{"name":"\ud800"}`, false, "")
	app := newApp(httpapi.EnvelopeStandard, &recorder{})
	app.Recorder = nil
	f.Fuzz(func(t *testing.T, method, path, body string, b64 bool, auth string) {
		ev := event(method, path, body)
		ev.IsBase64Encoded = b64
		ev.Headers["authorization"] = auth
		ev.Headers["cookie"] = auth
		resp, err := app.Handle(context.Background(), ev)
		if err != nil {
			t.Fatalf("error %v", err)
		}
		if resp.StatusCode >= 500 && !strings.HasPrefix(path, "/api/test/boom") && !strings.HasPrefix(path, "/api/test/panic") && !strings.HasPrefix(path, "/api/test/down") {
			t.Fatalf("status %d for %q %q %q: %s", resp.StatusCode, method, path, body, resp.Body)
		}
		if !json.Valid([]byte(resp.Body)) {
			t.Fatalf("invalid JSON body %q", resp.Body)
		}
	})
}

// Every request's log lines carry both the API Gateway and the Lambda request id.
func TestLogsCarryBothRequestIDs(t *testing.T) {
	var buf apitest.LogBuffer
	app := newApp(httpapi.EnvelopeStandard, &recorder{})
	app.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "lambda-req-7"})
	resp, _ := app.Handle(ctx, event("GET", "/api/test/boom", ""))
	if resp.StatusCode != 500 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	out := buf.String()
	if !strings.Contains(out, `"apiRequestId":"req-1"`) || !strings.Contains(out, `"lambdaRequestId":"lambda-req-7"`) {
		t.Errorf("log lines lack the request ids: %s", out)
	}
	if strings.Contains(resp.Body, "secret internal detail") || !strings.Contains(out, "secret internal detail") {
		t.Errorf("the internal error belongs in the log, not the body: body %s", resp.Body)
	}
}

// meetLimiter decides only once the prefetch has started (or gives up and
// says so), then answers allow or deny; cached answers CachedDeny.
type meetLimiter struct {
	started chan struct{}
	deny    bool
	cached  bool
	missed  bool
}

func (m *meetLimiter) CachedDeny(context.Context, string, string) bool { return m.cached }

func (m *meetLimiter) Limit(_ context.Context, policy, _ string) (ratelimit.Decision, error) {
	select {
	case <-m.started:
	case <-time.After(5 * time.Second):
		m.missed = true
	}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	d := ratelimit.Decision{Policy: policy, Allowed: !m.deny, Limit: 1, Window: time.Minute, Reset: now.Add(time.Second), At: now}
	if m.deny {
		d.RetryAfter = time.Second
	}
	return d, nil
}

// A route's Prefetch runs alongside the limiter's decision of an anonymous
// request (one round trip for both), hands its result to the handler, is
// cancelled when the request is refused, and is not started at all for a
// client the limiter already knows to refuse.
func TestPrefetchOverlapsTheLimiter(t *testing.T) {
	for _, tc := range []struct {
		name         string
		deny, cached bool
		status       int
		ran          bool
	}{
		{"admitted", false, false, 200, true},
		{"refused", true, false, 429, true},
		{"known refused", true, true, 429, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := &meetLimiter{started: make(chan struct{}), deny: tc.deny, cached: tc.cached}
			if tc.cached {
				close(lim.started) // nothing to wait for
			}
			var ran, cancelled bool
			app := &httpapi.App{
				Function: "test",
				Routes: []httpapi.Route{{Method: http.MethodPost, Path: "/api/test",
					Prefetch: func(ctx context.Context, r *httpapi.Request) any {
						ran = true
						close(lim.started)
						if tc.deny {
							<-ctx.Done()
							cancelled = true
						}
						return "prefetched"
					},
					Handler: func(_ context.Context, r *httpapi.Request) (*httpapi.Response, error) {
						return httpapi.JSON(http.StatusOK, map[string]any{"got": prefetched(r)}), nil
					}}},
				Limiter: lim,
				Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
			}
			resp, err := app.Handle(context.Background(), event("POST", "/api/test", `{"name":"x"}`))
			if err != nil || resp.StatusCode != tc.status {
				t.Fatalf("status %d (%v), want %d: %s", resp.StatusCode, err, tc.status, resp.Body)
			}
			if ran != tc.ran || lim.missed {
				t.Fatalf("prefetch ran %v (want %v); limiter waited in vain: %v", ran, tc.ran, lim.missed)
			}
			if tc.status == 200 && !strings.Contains(resp.Body, `"got":"prefetched"`) {
				t.Errorf("handler did not get the prefetch: %s", resp.Body)
			}
			if tc.deny && tc.ran && !cancelled {
				t.Error("a refused request's prefetch was not cancelled")
			}
		})
	}
}

// prefetched is what the route's Prefetch returned, nil when it did not run.
func prefetched(r *httpapi.Request) any {
	v, _ := httpapi.Prefetched[any](r)
	return v
}
