package faults

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/tests/internal/stack"
)

// route is one route of one function as a client calls it.
type route struct {
	name string
	// storeFree: answering needs nothing from the store but the limiter's
	// bucket (which may fall back per RATE_LIMIT_FAIL_MODE), so it may answer
	// as when healthy during an outage.
	storeFree bool
	// limited: the request spends from a limiter bucket (every route but
	// status=true and the health probe).
	limited bool
	healthy int // its status when the store is fine
	// duringFault, when set, are the statuses it may answer while every
	// store call fails (the health probe may serve its cached readiness).
	duringFault []int
	// prepare builds one request while the store is healthy (it may log in,
	// create a user, ...); each call gives a request that can be sent once.
	prepare func(t *testing.T, f *fixture, mode string) apitest.Request
	// check, when set, checks a healthy answer's body further.
	check func(res apitest.Response) error
}

// function is the function that serves the route.
func (r route) function() string {
	_, path, _ := strings.Cut(r.name, " ")
	path, _, _ = strings.Cut(path, "?")
	return stack.FunctionOf(path)
}

// readsMetrics: the route's function reads the metrics table to answer
// (traffic-manager: the load; system-monitor: its figures), so a fault on
// that table is a store fault for it, and the instance's breaker, which a
// failed read opens, fails its other calls for a second. auth and session
// only count (write) there.
func (r route) readsMetrics() bool {
	fn := r.function()
	return fn == "traffic-manager" || fn == "system-monitor"
}

func bearerReq(method, path string, tok string, body string) apitest.Request {
	return apitest.Request{Method: method, Path: path, Headers: apitest.Bearer(tok), Body: body, SourceIP: sourceIP()}
}

func loginBody(t *testing.T, user, password string) string {
	return apitest.JSON(t, map[string]any{"action": "login", "username": user, "password": password})
}

// routes is every route of every function (API.md), as a client calls it.
func routes(f *fixture) []route {
	admin := func(method, path, body string, healthy int) route {
		return route{name: method + " " + path, limited: true, healthy: healthy,
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				return bearerReq(method, path, f.admin, body)
			}}
	}
	rs := []route{
		{name: "POST /api/auth login", limited: true, healthy: 200,
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				return apitest.Request{Method: "POST", Path: "/api/auth", Body: loginBody(t, staffUser, f.password[staffUser]), SourceIP: sourceIP()}
			}},
		{name: "POST /api/auth login unknown user", limited: true, healthy: 401,
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				return apitest.Request{Method: "POST", Path: "/api/auth", Body: loginBody(t, "nobody_"+apitest.RandomHex(t, 4), apitest.RandomPassword(t)), SourceIP: sourceIP()}
			}},
		{name: "POST /api/auth validate (body sessionId)", limited: true, healthy: 200,
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				return apitest.Request{Method: "POST", Path: "/api/auth", Body: apitest.JSON(t, map[string]any{"action": "validate", "sessionId": f.staff}), SourceIP: sourceIP()}
			}},
		{name: "POST /api/auth validate (bearer)", limited: true, healthy: 200,
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				return bearerReq("POST", "/api/auth", f.staff, `{"action":"validate"}`)
			}},
		{name: "POST /api/auth logout", limited: true, healthy: 200,
			check: func(res apitest.Response) error {
				if res.Body["success"] != true {
					return fmt.Errorf("logout of a live session: %s", res.Raw)
				}
				return nil
			},
			prepare: func(t *testing.T, f *fixture, mode string) apitest.Request {
				tok := f.stacks[mode].Login(t, victimUser+mode, f.password[victimUser+mode])
				return bearerReq("POST", "/api/auth", tok, `{"action":"logout"}`)
			}},
		{name: "GET /api/auth (bearer)", limited: true, healthy: 200,
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				return bearerReq("GET", "/api/auth", f.staff, "")
			}},
		{name: "GET /api/auth (cookie)", limited: true, healthy: 200,
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				return apitest.Request{Method: "GET", Path: "/api/auth", Cookies: []string{"zenith_session=" + f.staff}, SourceIP: sourceIP()}
			}},
		{name: "GET /api/auth?sessionId=", limited: true, healthy: 200,
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				return apitest.Request{Method: "GET", Path: "/api/auth", Query: map[string]string{"sessionId": f.staff}, SourceIP: sourceIP()}
			}},
		{name: "GET /api/auth (no token)", storeFree: true, limited: true, healthy: 401,
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				return apitest.Request{Method: "GET", Path: "/api/auth", SourceIP: sourceIP()}
			}},
		admin("GET", "/api/auth/users", "", 200),
		{name: "POST /api/auth/users", limited: true, healthy: 201,
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				return bearerReq("POST", "/api/auth/users", f.admin, apitest.JSON(t, map[string]any{
					"username": "u_" + apitest.RandomHex(t, 5), "password": apitest.RandomPassword(t), "role": "staff_tester", "name": "Fault Test"}))
			}},
		{name: "PATCH /api/auth/users/{username}", limited: true, healthy: 200,
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				return bearerReq("PATCH", "/api/auth/users/"+staffUser, f.admin, apitest.JSON(t, map[string]any{"name": "Staff " + apitest.RandomHex(t, 2)}))
			}},
		{name: "DELETE /api/auth/users/{username}", limited: true, healthy: 200,
			prepare: func(t *testing.T, f *fixture, mode string) apitest.Request {
				name := "d_" + apitest.RandomHex(t, 5)
				f.stacks[mode].CreateUser(t, f.admin, name, apitest.RandomPassword(t), "staff_tester")
				return bearerReq("DELETE", "/api/auth/users/"+name, f.admin, "")
			}},
		{name: "GET /api/sessions", limited: true, healthy: 200,
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				return bearerReq("GET", "/api/sessions", f.staff, "")
			}},
		{name: "GET /api/sessions?all=true", limited: true, healthy: 200,
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				r := bearerReq("GET", "/api/sessions", f.admin, "")
				r.Query = map[string]string{"all": "true", "limit": "5"}
				return r
			}},
		admin("GET", "/api/sessions/count", "", 200),
		{name: "DELETE /api/sessions/{id}", limited: true, healthy: 200,
			prepare: func(t *testing.T, f *fixture, mode string) apitest.Request {
				s := f.stacks[mode]
				tok := s.Login(t, victimUser+mode, f.password[victimUser+mode])
				return bearerReq("DELETE", "/api/sessions/"+s.Handle(t, tok), tok, "")
			}},
		{name: "DELETE /api/sessions", limited: true, healthy: 200,
			prepare: func(t *testing.T, f *fixture, mode string) apitest.Request {
				tok := f.stacks[mode].Login(t, enderUser+mode, f.password[enderUser+mode])
				return bearerReq("DELETE", "/api/sessions", tok, "")
			}},
		{name: "GET /api/traffic-manager?status=true", storeFree: true, healthy: 200,
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				return apitest.Request{Method: "GET", Path: "/api/traffic-manager", Query: map[string]string{"status": "true"}, SourceIP: sourceIP()}
			}},
		// A free public probe reads no session, token or not (httpapi: a public
		// request that spends nothing needs none), so it needs no store either.
		{name: "GET /api/traffic-manager?status=true (bearer)", storeFree: true, healthy: 200,
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				r := bearerReq("GET", "/api/traffic-manager", f.staff, "")
				r.Query = map[string]string{"status": "true"}
				return r
			}},
		{name: "GET /api/traffic-manager (front door)", storeFree: true, limited: true, healthy: 200,
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				return apitest.Request{Method: "GET", Path: "/api/traffic-manager", SourceIP: sourceIP()}
			}},
		admin("POST", "/api/traffic-manager", `{"simulateLoad":true,"connections":1,"load":0.001}`, 200),
	}
	for _, ep := range []string{"overview", "metrics", "history", "health", "alerts"} {
		rs = append(rs, route{name: "GET /api/system-monitor?endpoint=" + ep, limited: true, healthy: 200,
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				r := bearerReq("GET", "/api/system-monitor", f.staff, "")
				r.Query = map[string]string{"endpoint": ep}
				return r
			}})
	}
	rs = append(rs,
		admin("POST", "/api/system-monitor", `{"requests":{"total":10,"successful":9,"failed":1}}`, 200),
		admin("POST", "/api/system-monitor/alerts/no-such-alert/acknowledge", "", 404),
		// API.md: public, spends nothing, 503 {status:"unavailable"} with Retry-After when the store is down.
		// Its readiness is cached up to 5 s per instance: a 200 just after the fault starts is right.
		route{name: "GET /api/health", healthy: 200, duringFault: []int{200, 503},
			prepare: func(t *testing.T, f *fixture, _ string) apitest.Request {
				return apitest.Request{Method: "GET", Path: "/api/health", SourceIP: sourceIP()}
			}},
	)
	return rs
}

// checkEnvelope reports how an error body departs from its route's envelope
// (API.md, "Error envelopes").
func checkEnvelope(method, path string, res apitest.Response) error {
	if res.Str("requestId") == "" {
		return fmt.Errorf("no requestId: %s", res.Raw)
	}
	if strings.HasPrefix(path, "/api/health") {
		if res.Str("status") == "" {
			return fmt.Errorf("not the health shape: %s", res.Raw)
		}
		return nil
	}
	if res.Str("code") == "" {
		return fmt.Errorf("no code: %s", res.Raw)
	}
	switch {
	case method == "GET" && strings.HasPrefix(path, "/api/system-monitor"):
		if res.Str("error") == "" || res.Str("timestamp") == "" || res.Body["success"] != nil {
			return fmt.Errorf("not the monitor envelope: %s", res.Raw)
		}
	case method == "GET" && strings.HasPrefix(path, "/api/traffic-manager"):
		if res.Body["error"] != true || res.Str("message") == "" || res.Str("timestamp") == "" {
			return fmt.Errorf("not the traffic envelope: %s", res.Raw)
		}
	default:
		if res.Body["success"] != false || res.Str("error") == "" {
			return fmt.Errorf("not the standard envelope: %s", res.Raw)
		}
	}
	return nil
}

func decodeJSON(s string, v any) error { return json.Unmarshal([]byte(s), v) }
