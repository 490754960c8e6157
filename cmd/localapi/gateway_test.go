package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zenithfresh/zenith-serverless/shared/samtemplate"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func okHandler(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	return events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: "{}"}, nil
}

func gatewayFor(t *testing.T, specs ...RouteSpec) *Gateway {
	t.Helper()
	var routes []Route
	for _, s := range specs {
		routes = append(routes, Route{RouteSpec: s, Function: "f", Handler: okHandler})
	}
	g, err := NewGateway(routes, nil, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestRoutePriority(t *testing.T) {
	g := gatewayFor(t,
		RouteSpec{Method: "ANY", Path: "/api/auth"},
		RouteSpec{Method: "ANY", Path: "/api/auth/{proxy+}"},
		RouteSpec{Method: "ANY", Path: DefaultRoute},
		RouteSpec{Method: "GET", Path: "/items/{id}"},
		RouteSpec{Method: "POST", Path: "/items/{id}"},
		RouteSpec{Method: "GET", Path: "/items/special"},
		RouteSpec{Method: "ANY", Path: "/items/{proxy+}"},
		RouteSpec{Method: "GET", Path: "/items/{id}/parts"},
		RouteSpec{Method: "ANY", Path: "/items/{id}/parts"},
	)
	cases := []struct {
		method, path string
		wantKey      string
		wantParams   map[string]string
	}{
		{"GET", "/api/auth", "ANY /api/auth", nil},
		{"POST", "/api/auth/users/alice", "ANY /api/auth/{proxy+}", map[string]string{"proxy": "users/alice"}},
		{"GET", "/items/special", "GET /items/special", nil},                             // static beats {param}
		{"GET", "/items/42", "GET /items/{id}", map[string]string{"id": "42"}},           // {param} beats {proxy+}
		{"POST", "/items/42", "POST /items/{id}", map[string]string{"id": "42"}},         // the method decides between equals
		{"DELETE", "/items/42", "ANY /items/{proxy+}", map[string]string{"proxy": "42"}}, // no DELETE route: greedy
		{"GET", "/items/42/x/y", "ANY /items/{proxy+}", map[string]string{"proxy": "42/x/y"}},
		{"GET", "/items/7/parts", "GET /items/{id}/parts", map[string]string{"id": "7"}}, // a named method beats ANY
		{"PUT", "/items/7/parts", "ANY /items/{id}/parts", map[string]string{"id": "7"}}, // {param} beats greedy
		{"GET", "/items", "$default", nil},                                               // greedy needs a segment
		{"GET", "/nowhere", "$default", nil},
		{"GET", "/", "$default", nil},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r, params := g.Select(tc.method, tc.path)
			if r == nil {
				t.Fatal("no route")
			}
			if r.Key() != tc.wantKey {
				t.Errorf("route %q, want %q", r.Key(), tc.wantKey)
			}
			if len(params) != len(tc.wantParams) {
				t.Fatalf("params %v, want %v", params, tc.wantParams)
			}
			for k, v := range tc.wantParams {
				if params[k] != v {
					t.Errorf("param %s = %q, want %q", k, params[k], v)
				}
			}
		})
	}
	if _, err := NewGateway([]Route{{RouteSpec: RouteSpec{Method: "ANY", Path: "/a"}}, {RouteSpec: RouteSpec{Method: "ANY", Path: "/a"}}}, nil, nil, quiet()); err == nil {
		t.Error("a duplicate route key was accepted")
	}
	if _, err := NewGateway([]Route{{RouteSpec: RouteSpec{Method: "ANY", Path: "/a/{p+}/b"}}}, nil, nil, quiet()); err == nil {
		t.Error("a greedy variable before the last segment was accepted")
	}
}

func TestTemplateRoutesGoToTheirFunctions(t *testing.T) {
	tmpl, err := samtemplate.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	var routes []Route
	for _, fn := range tmpl.Functions {
		if _, ok := functions[fn.LogicalID]; !ok {
			t.Errorf("template function %s has no local counterpart", fn.LogicalID)
		}
		for _, rs := range fn.Routes {
			routes = append(routes, Route{RouteSpec: rs, Function: fn.LogicalID, Handler: okHandler})
		}
	}
	g, err := NewGateway(routes, tmpl.CORS, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ method, path, function, key string }{
		{"POST", "/api/auth", "AuthFunction", "ANY /api/auth"},
		{"PATCH", "/api/auth/users/bob", "AuthFunction", "ANY /api/auth/{proxy+}"},
		{"GET", "/api/sessions", "SessionFunction", "ANY /api/sessions"},
		{"GET", "/api/sessions/count", "SessionFunction", "ANY /api/sessions/{proxy+}"},
		{"GET", "/api/traffic-manager", "TrafficManagerFunction", "ANY /api/traffic-manager"},
		{"POST", "/api/system-monitor/alerts/a1/acknowledge", "SystemMonitorFunction", "ANY /api/system-monitor/{proxy+}"},
		{"GET", "/api/health", "SystemMonitorFunction", "ANY /api/health"},
		{"POST", "/api/health", "SystemMonitorFunction", "ANY /api/health"}, // its 405, not auth's 404
		{"GET", "/api/health/x", "AuthFunction", "$default"},
		{"GET", "/api/sessionsX", "AuthFunction", "$default"},
		{"GET", "/", "AuthFunction", "$default"},
	}
	for _, tc := range cases {
		r, _ := g.Select(tc.method, tc.path)
		if r == nil || r.Function != tc.function || r.Key() != tc.key {
			t.Errorf("%s %s -> %+v, want %s via %s", tc.method, tc.path, r, tc.function, tc.key)
		}
	}
	if tmpl.CORS == nil || len(tmpl.CORS.ExposeHeaders) == 0 || tmpl.CORS.MaxAge == 0 {
		t.Errorf("CORS settings not read from the template: %+v", tmpl.CORS)
	}
	byID := map[string]samtemplate.Function{}
	for _, fn := range tmpl.Functions {
		byID[fn.LogicalID] = fn
	}
	if fn := byID["AuthFunction"]; fn.MemoryMB < 1024 || fn.Timeout <= 0 {
		t.Errorf("auth memory %d MB timeout %d s, want the template's", fn.MemoryMB, fn.Timeout)
	}
	if fn := byID["SystemMonitorFunction"]; len(fn.Schedules) != 1 || fn.Schedules[0] != "rate(1 minute)" {
		t.Errorf("system-monitor schedules %v, want [rate(1 minute)]", fn.Schedules)
	}
}

func TestBase64BodyRule(t *testing.T) {
	cases := []struct {
		contentType string
		text        bool
	}{
		{"application/json", true},
		{"application/json; charset=utf-8", true},
		{"APPLICATION/JSON", true},
		{"application/problem+json", true},
		{"text/plain", true},
		{"text/html; charset=utf-8", true},
		{"application/xml", true},
		{"application/atom+xml", true},
		{"application/javascript", true},
		{"", false},
		{"application/octet-stream", false},
		{"application/x-www-form-urlencoded", false},
		{"multipart/form-data; boundary=x", false},
		{"image/png", false},
	}
	for _, tc := range cases {
		if got := IsTextContentType(tc.contentType); got != tc.text {
			t.Errorf("IsTextContentType(%q) = %v, want %v", tc.contentType, got, tc.text)
		}
	}
}

// TestEventAndResponseConversion sends a real HTTP request through the gateway
// and checks both directions of the conversion.
func TestEventAndResponseConversion(t *testing.T) {
	var mu sync.Mutex
	var got events.APIGatewayV2HTTPRequest
	handler := func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		mu.Lock()
		got = ev
		mu.Unlock()
		return events.APIGatewayV2HTTPResponse{
			StatusCode:        201,
			Headers:           map[string]string{"Content-Type": "application/json", "X-Request-ID": ev.RequestContext.RequestID},
			MultiValueHeaders: map[string][]string{"X-Multi": {"a", "b"}},
			Cookies:           []string{"zenith_session=abc; HttpOnly; Path=/", "other=1; Path=/"},
			Body:              base64.StdEncoding.EncodeToString([]byte(`{"ok":true}`)),
			IsBase64Encoded:   true,
		}, nil
	}
	g, err := NewGateway([]Route{{RouteSpec: RouteSpec{Method: "ANY", Path: "/api/x/{proxy+}"}, Function: "x", Handler: handler}}, nil, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	fixed := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	g.now = func() time.Time { return fixed }
	ids := 0
	g.newID = func() string { ids++; return "id" + string(rune('0'+ids)) }
	srv := httptest.NewServer(g)
	defer srv.Close()

	binary := []byte{0xff, 0x00, 0x10}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/x/a/b%20c?q=1&q=2&single=v", bytes.NewReader(binary))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Cookie", "zenith_session=tok; theme=dark")
	req.Header.Set("X-Forwarded-For", "198.51.100.7")
	req.Header.Add("X-Custom", "one")
	req.Header.Add("X-Custom", "two")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	mu.Lock()
	ev := got
	mu.Unlock()
	checks := []struct {
		name      string
		got, want any
	}{
		{"version", ev.Version, "2.0"},
		{"routeKey", ev.RouteKey, "ANY /api/x/{proxy+}"},
		{"requestContext.routeKey", ev.RequestContext.RouteKey, "ANY /api/x/{proxy+}"},
		{"rawPath", ev.RawPath, "/api/x/a/b%20c"},
		{"http.path", ev.RequestContext.HTTP.Path, "/api/x/a/b c"},
		{"rawQueryString", ev.RawQueryString, "q=1&q=2&single=v"},
		{"query q", ev.QueryStringParameters["q"], "1,2"},
		{"query single", ev.QueryStringParameters["single"], "v"},
		{"proxy", ev.PathParameters["proxy"], "a/b c"},
		{"method", ev.RequestContext.HTTP.Method, "POST"},
		{"sourceIp", ev.RequestContext.HTTP.SourceIP, "127.0.0.1"},
		{"x-forwarded-for", ev.Headers["x-forwarded-for"], "198.51.100.7, 127.0.0.1"},
		{"multi-value header", ev.Headers["x-custom"], "one,two"},
		{"no cookie header", ev.Headers["cookie"], ""},
		{"cookies", strings.Join(ev.Cookies, "|"), "zenith_session=tok|theme=dark"},
		{"isBase64Encoded", ev.IsBase64Encoded, true},
		{"body", ev.Body, base64.StdEncoding.EncodeToString(binary)},
		{"requestId", ev.RequestContext.RequestID, "id1"},
		{"stage", ev.RequestContext.Stage, "$default"},
		{"time", ev.RequestContext.Time, "26/Nov/2026:12:00:00 +0000"},
		{"timeEpoch", ev.RequestContext.TimeEpoch, fixed.UnixMilli()},

		{"status", resp.StatusCode, 201},
		{"response body (base64 undone)", string(body), `{"ok":true}`},
		{"set-cookie", strings.Join(resp.Header.Values("Set-Cookie"), "|"), "zenith_session=abc; HttpOnly; Path=/|other=1; Path=/"},
		{"multi-value response header", strings.Join(resp.Header.Values("X-Multi"), ","), "a,b"},
		{"x-request-id", resp.Header.Get("X-Request-ID"), "id1"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}

	// A JSON body arrives as text; no query gives no query map.
	req, _ = http.NewRequest(http.MethodPost, srv.URL+"/api/x/y", strings.NewReader(`{"a":1}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	ev = got
	mu.Unlock()
	if ev.IsBase64Encoded || ev.Body != `{"a":1}` || ev.QueryStringParameters != nil || ev.Cookies != nil {
		t.Errorf("JSON request became body=%q base64=%v query=%v cookies=%v", ev.Body, ev.IsBase64Encoded, ev.QueryStringParameters, ev.Cookies)
	}
}

// TestGatewayOwnAnswers covers what API Gateway answers itself, without the contract.
func TestGatewayOwnAnswers(t *testing.T) {
	failing := func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		return events.APIGatewayV2HTTPResponse{}, errors.New("boom")
	}
	panicking := func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		panic("bug")
	}
	hanging := func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		<-ctx.Done() // runs into the function's timeout
		return events.APIGatewayV2HTTPResponse{}, ctx.Err()
	}
	g, err := NewGateway([]Route{
		{RouteSpec: RouteSpec{Method: "ANY", Path: "/fail"}, Function: "f", Handler: failing},
		{RouteSpec: RouteSpec{Method: "ANY", Path: "/panic"}, Function: "f", Handler: panicking},
		{RouteSpec: RouteSpec{Method: "ANY", Path: "/hang"}, Function: "f", Handler: hanging, Timeout: time.Millisecond},
		{RouteSpec: RouteSpec{Method: "ANY", Path: "/ok"}, Function: "f", Handler: okHandler},
	}, &CORS{AllowMethods: []string{"GET", "POST"}, AllowHeaders: []string{"content-type"}, ExposeHeaders: []string{"x-request-id"}, MaxAge: 600},
		[]string{"http://localhost:3000"}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	defer srv.Close()

	do := func(method, path string, body io.Reader, headers map[string]string) (*http.Response, map[string]string) {
		req, _ := http.NewRequest(method, srv.URL+path, body)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp, m
	}
	for _, tc := range []struct {
		name, method, path string
		body               io.Reader
		status             int
		message            string
	}{
		{"function error", "GET", "/fail", nil, 500, "Internal Server Error"},
		{"function panic", "GET", "/panic", nil, 500, "Internal Server Error"},
		{"function timeout", "GET", "/hang", nil, 500, "Internal Server Error"},
		{"no route and no $default", "GET", "/nothing", nil, 404, "Not Found"},
		{"payload over 10 MB", "POST", "/ok", bytes.NewReader(make([]byte, MaxPayloadBytes+1)), 413, "Request Entity Too Large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := do(tc.method, tc.path, tc.body, nil)
			if resp.StatusCode != tc.status || m["message"] != tc.message {
				t.Errorf("got %d %v, want %d %q", resp.StatusCode, m, tc.status, tc.message)
			}
		})
	}

	// Between Lambda's 6 MB event limit and HTTP API's 10 MB: a JSON body
	// counts as sent, a binary one base64-encoded (a third larger).
	for _, tc := range []struct {
		name        string
		contentType string
		size        int
		status      int
	}{
		{"5 MiB of JSON reaches the function", "application/json", 5 << 20, 200},
		{"6 MiB of JSON makes an event over 6 MB", "application/json", MaxEventBytes, 413},
		{"5 MiB of binary is over 6 MB base64-encoded", "application/octet-stream", 5 << 20, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := do("POST", "/ok", bytes.NewReader(bytes.Repeat([]byte("a"), tc.size)), map[string]string{"Content-Type": tc.contentType})
			if resp.StatusCode != tc.status || (tc.status == 413 && m["message"] != "Request Entity Too Large") {
				t.Errorf("got %d %v, want %d", resp.StatusCode, m, tc.status)
			}
		})
	}

	t.Run("CORS preflight from an allowed origin", func(t *testing.T) {
		resp, _ := do("OPTIONS", "/ok", nil, map[string]string{"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"})
		if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" ||
			resp.Header.Get("Access-Control-Allow-Credentials") != "true" || resp.Header.Get("Access-Control-Max-Age") != "600" {
			t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("CORS preflight from another origin", func(t *testing.T) {
		resp, _ := do("OPTIONS", "/ok", nil, map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight allowed a foreign origin: %v", resp.Header)
		}
	})
	t.Run("CORS headers on an answer", func(t *testing.T) {
		resp, _ := do("GET", "/ok", nil, map[string]string{"Origin": "http://localhost:3000"})
		if resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" || resp.Header.Get("Access-Control-Expose-Headers") != "x-request-id" {
			t.Errorf("answer lacks CORS headers: %v", resp.Header)
		}
	})
}

func TestParseRate(t *testing.T) {
	for expr, want := range map[string]time.Duration{
		"rate(1 minute)": time.Minute, "rate(5 minutes)": 5 * time.Minute, "rate(2 hours)": 2 * time.Hour, "rate(1 day)": 24 * time.Hour,
	} {
		if got, err := parseRate(expr); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", expr, got, err, want)
		}
	}
	for _, bad := range []string{"rate(0 minutes)", "cron(0 12 * * ? *)", "rate(1 week)", ""} {
		if _, err := parseRate(bad); err == nil {
			t.Errorf("parseRate(%q) accepted", bad)
		}
	}
}

func TestNewPassword(t *testing.T) {
	a, err := newPassword(24)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newPassword(24)
	if len(a) != 24 || a == b || strings.Trim(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
		t.Errorf("passwords %q %q: want 24 random alphanumerics", a, b)
	}
}
