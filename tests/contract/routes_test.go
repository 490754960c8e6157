package contract

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/openapitest"
	"github.com/zenithfresh/zenith-serverless/shared/samtemplate"
)

// healthFunction is the function template.yaml routes GET /api/health to, ""
// while the template has no such route.
func healthFunction(t *testing.T) string {
	t.Helper()
	tmpl, err := samtemplate.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{"AuthFunction": "auth", "SessionFunction": "session", "TrafficManagerFunction": "traffic-manager", "SystemMonitorFunction": "system-monitor"}
	for _, fn := range tmpl.Functions {
		for _, r := range fn.Routes {
			if r.Path == "/api/health" && (r.Method == "GET" || r.Method == "ANY") {
				return names[fn.LogicalID]
			}
		}
	}
	return ""
}

// TestEveryOperationSucceedsAsDocumented drives every route and method of the
// four functions through its 2xx answer, each exchange validated against
// openapi.yaml by apitest.Do (TestMain), and then checks that every operation
// of the document got a validated 2xx here: a route the functions gain or the
// document gains without the other fails.
func TestEveryOperationSucceedsAsDocumented(t *testing.T) {
	v := openapitest.Active()
	if v == nil {
		t.Fatal("no validator: TestMain must run openapitest.Main")
	}
	before := v.Counts()
	s := newStack(t)
	admin := apitest.Login(t, s.apps["auth"], adminUser, adminPassword)
	h := apitest.Bearer(admin)
	expect := func(fn string, c apitest.Request, want int) apitest.Response {
		t.Helper()
		if c.Headers == nil {
			c.Headers = h
		}
		res := s.do(t, fn, c)
		if res.Status != want {
			t.Fatalf("%s %s %s: %d, want %d: %s", fn, c.Method, c.Path, res.Status, want, res.Raw)
		}
		return res
	}
	body := func(v any) string { return apitest.JSON(t, v) }

	// auth: staff users.
	expect("auth", apitest.Request{Method: "GET", Path: "/api/auth/users"}, 200)
	expect("auth", apitest.Request{Method: "GET", Path: "/api/auth/users", Query: map[string]string{"limit": "1"}}, 200)
	for _, u := range []string{"route_staff", "route_spare", "route_locked"} {
		expect("auth", apitest.Request{Method: "POST", Path: "/api/auth/users",
			Body: body(map[string]string{"username": u, "password": "route-password-1", "role": "staff_tester", "name": "Route " + u})}, 201)
	}
	expect("auth", apitest.Request{Method: "PATCH", Path: "/api/auth/users/route_staff", Body: `{"name":"Renamed"}`}, 200)
	expect("auth", apitest.Request{Method: "DELETE", Path: "/api/auth/users/route_spare"}, 200)

	// auth: login, validate (GET with bearer, cookie and the deprecated query; POST), logout.
	login := expect("auth", apitest.Request{Method: "POST", Path: "/api/auth", Headers: map[string]string{},
		Body: body(map[string]string{"action": "login", "username": "route_staff", "password": "route-password-1"})}, 200)
	staff, _ := login.Get("session.id").(string)
	expect("auth", apitest.Request{Method: "GET", Path: "/api/auth", Headers: apitest.Bearer(staff)}, 200)
	expect("auth", apitest.Request{Method: "GET", Path: "/api/auth", Headers: map[string]string{}, Cookies: []string{"zenith_session=" + staff}}, 200)
	expect("auth", apitest.Request{Method: "GET", Path: "/api/auth", Headers: map[string]string{}, Query: map[string]string{"sessionId": staff}}, 200)
	expect("auth", apitest.Request{Method: "POST", Path: "/api/auth", Headers: apitest.Bearer(staff), Body: `{"action":"validate"}`}, 200)
	expect("auth", apitest.Request{Method: "POST", Path: "/api/auth", Headers: map[string]string{}, Body: body(map[string]string{"action": "validate", "sessionId": staff})}, 200)
	second := apitest.Login(t, s.apps["auth"], "route_staff", "route-password-1")
	expect("auth", apitest.Request{Method: "POST", Path: "/api/auth", Headers: apitest.Bearer(second), Body: `{"action":"logout"}`}, 200)

	// session: list (own, all, a user's), count, end one, end all.
	_ = apitest.Login(t, s.apps["auth"], "route_staff", "route-password-1") // a second session to end by handle
	own := expect("session", apitest.Request{Method: "GET", Path: "/api/sessions", Headers: apitest.Bearer(staff)}, 200)
	expect("session", apitest.Request{Method: "GET", Path: "/api/sessions", Query: map[string]string{"all": "true", "limit": "1"}}, 200)
	expect("session", apitest.Request{Method: "GET", Path: "/api/sessions", Query: map[string]string{"userId": "route_staff"}}, 200)
	expect("session", apitest.Request{Method: "GET", Path: "/api/sessions/count"}, 200)
	var handle string
	for _, x := range own.Body["sessions"].([]any) {
		if m := x.(map[string]any); m["current"] != true {
			handle, _ = m["id"].(string)
		}
	}
	if handle == "" {
		t.Fatalf("no other session of route_staff to end: %s", own.Raw)
	}
	expect("session", apitest.Request{Method: "DELETE", Path: "/api/sessions/" + handle, Headers: apitest.Bearer(staff)}, 200)
	expect("session", apitest.Request{Method: "DELETE", Path: "/api/sessions", Headers: apitest.Bearer(staff)}, 200)

	// traffic-manager: status, front door, override (adding and not).
	expect("traffic-manager", apitest.Request{Method: "GET", Path: "/api/traffic-manager", Query: map[string]string{"status": "true"}}, 200)
	expect("traffic-manager", apitest.Request{Method: "GET", Path: "/api/traffic-manager", Query: map[string]string{"status": "false"}}, 200)
	expect("traffic-manager", apitest.Request{Method: "POST", Path: "/api/traffic-manager", Body: `{"simulateLoad":true,"connections":5,"load":0.05}`}, 200)
	expect("traffic-manager", apitest.Request{Method: "POST", Path: "/api/traffic-manager", Body: `{"simulateLoad":false}`}, 200)

	// system-monitor: six failed logins in one minute raise the failed_logins
	// alert at the next evaluation, which is then acknowledged.
	m := s.clock.Now().Truncate(time.Minute).Add(time.Minute)
	s.clock.Set(m.Add(time.Second))
	for i := 0; i < 6; i++ {
		expect("auth", apitest.Request{Method: "POST", Path: "/api/auth", Headers: map[string]string{},
			Body: body(map[string]string{"action": "login", "username": "route_locked", "password": fmt.Sprintf("wrong-password-%d", i)})}, 401)
		s.clock.Advance(5 * time.Second) // past each lockout step
	}
	s.clock.Set(m.Add(time.Minute + time.Second))
	if _, err := s.mon.Invoke(context.Background(), json.RawMessage(`{"source":"aws.events","detail-type":"Scheduled Event","detail":{}}`)); err != nil {
		t.Fatalf("scheduled evaluation: %v", err)
	}
	for _, q := range []map[string]string{nil, {"endpoint": "overview"}, {"endpoint": "metrics"}, {"endpoint": "history"},
		{"endpoint": "history", "hours": "3"}, {"endpoint": "health"}} {
		expect("system-monitor", apitest.Request{Method: "GET", Path: "/api/system-monitor", Query: q}, 200)
	}
	list := expect("system-monitor", apitest.Request{Method: "GET", Path: "/api/system-monitor", Query: map[string]string{"endpoint": "alerts"}}, 200)
	alerts, _ := list.Body["alerts"].([]any)
	if len(alerts) == 0 {
		t.Fatalf("no alert raised by six failed logins: %s", list.Raw)
	}
	id, _ := alerts[0].(map[string]any)["id"].(string)
	expect("system-monitor", apitest.Request{Method: "POST", Path: "/api/system-monitor/alerts/" + id + "/acknowledge"}, 200)
	expect("system-monitor", apitest.Request{Method: "POST", Path: "/api/system-monitor",
		Body: `{"requests":{"total":10,"successful":9,"failed":1},"performance":{"averageResponseTime":12.5}}`}, 200)

	// GET /api/health, once the template routes it (another change adds it).
	fn := healthFunction(t)
	if fn != "" {
		expect(fn, apitest.Request{Method: "GET", Path: "/api/health", Headers: map[string]string{}}, 200)
	}

	got := v.Counts().Since(before)
	missing := v.WithoutSuccess(got)
	if fn == "" {
		missing = slicesWithout(missing, "GET /api/health")
	}
	if len(missing) > 0 {
		t.Errorf("operations of openapi.yaml without a validated 2xx answer: %s", strings.Join(missing, ", "))
	}
	var pairs []string
	for k, n := range got.Answers {
		pairs = append(pairs, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(pairs)
	t.Logf("validated %d responses and %d requests against openapi.yaml:\n  %s", got.Responses, got.Requests, strings.Join(pairs, "\n  "))
}

func slicesWithout(xs []string, x string) []string {
	out := xs[:0:0]
	for _, y := range xs {
		if y != x {
			out = append(out, y)
		}
	}
	return out
}
