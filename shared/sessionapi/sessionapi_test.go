package sessionapi_test

import (
	"net/http"
	"reflect"
	"regexp"
	"testing"
	"time"
)

var isoPattern = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

func TestListOwnSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	t1 := e.login(t, masterName, e.masterPassword)
	e.clock.Advance(time.Minute)
	t2 := e.login(t, masterName, e.masterPassword)
	res := e.do(t, request{method: http.MethodGet, path: "/api/sessions", headers: bearer(t2)})
	if res.status != 200 {
		t.Fatalf("%d %s", res.status, res.raw)
	}
	list := res.sessions()
	if len(list) != 2 {
		t.Fatalf("sessions = %v", list)
	}
	current := 0
	for _, s := range list {
		keys := []string{}
		for k := range s {
			keys = append(keys, k)
		}
		if len(s) != 5 || s["id"] == nil || s["createdAt"] == nil || s["lastActivity"] == nil || s["expiresAt"] == nil || s["current"] == nil {
			t.Fatalf("session shape %v", keys)
		}
		for _, k := range []string{"createdAt", "lastActivity", "expiresAt"} {
			if !isoPattern.MatchString(s[k].(string)) {
				t.Fatalf("%s = %v", k, s[k])
			}
		}
		id := s["id"].(string)
		if len(id) != 16 || id == t1 || id == t2 || contains(res.raw, t1) || contains(res.raw, t2) {
			t.Fatalf("listing exposes a token or a bad handle: %s", res.raw)
		}
		if s["current"] == true {
			current++
		}
	}
	if current != 1 {
		t.Fatalf("%d current sessions", current)
	}
	if _, has := res.body["cursor"]; has {
		t.Fatal("a complete listing carries a cursor")
	}
	// Pagination.
	res = e.do(t, request{method: http.MethodGet, path: "/api/sessions", headers: bearer(t2), query: map[string]string{"limit": "1"}})
	if len(res.sessions()) != 1 || res.str("cursor") == "" {
		t.Fatalf("page 1: %s", res.raw)
	}
	res2 := e.do(t, request{method: http.MethodGet, path: "/api/sessions", headers: bearer(t2), query: map[string]string{"limit": "1", "cursor": res.str("cursor")}})
	if len(res2.sessions()) != 1 || res2.sessions()[0]["id"] == res.sessions()[0]["id"] {
		t.Fatalf("page 2: %s", res2.raw)
	}
}

func TestSessionValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok := e.login(t, masterName, e.masterPassword)
	tests := []struct {
		name   string
		req    request
		status int
		code   string
	}{
		{"no token list", request{method: http.MethodGet, path: "/api/sessions"}, 401, "UNAUTHORIZED"},
		{"no token count", request{method: http.MethodGet, path: "/api/sessions/count"}, 401, "UNAUTHORIZED"},
		{"no token delete", request{method: http.MethodDelete, path: "/api/sessions/0123456789abcdef"}, 401, "UNAUTHORIZED"},
		{"no token delete all", request{method: http.MethodDelete, path: "/api/sessions"}, 401, "UNAUTHORIZED"},
		{"bad token", request{method: http.MethodGet, path: "/api/sessions", headers: bearer("session_101010_nope")}, 401, "UNAUTHORIZED"},
		{"limit zero", request{method: http.MethodGet, path: "/api/sessions", headers: bearer(tok), query: map[string]string{"limit": "0"}}, 400, "VALIDATION_ERROR"},
		{"limit big", request{method: http.MethodGet, path: "/api/sessions", headers: bearer(tok), query: map[string]string{"limit": "101"}}, 400, "VALIDATION_ERROR"},
		{"limit float", request{method: http.MethodGet, path: "/api/sessions", headers: bearer(tok), query: map[string]string{"limit": "1.5"}}, 400, "VALIDATION_ERROR"},
		{"all bad", request{method: http.MethodGet, path: "/api/sessions", headers: bearer(tok), query: map[string]string{"all": "yes"}}, 400, "VALIDATION_ERROR"},
		{"userId bad", request{method: http.MethodGet, path: "/api/sessions", headers: bearer(tok), query: map[string]string{"userId": "a b"}}, 400, "VALIDATION_ERROR"},
		{"userId and all", request{method: http.MethodGet, path: "/api/sessions", headers: bearer(tok), query: map[string]string{"userId": "abc", "all": "true"}}, 400, "VALIDATION_ERROR"},
		{"cursor junk", request{method: http.MethodGet, path: "/api/sessions", headers: bearer(tok), query: map[string]string{"cursor": "%%%"}}, 400, "VALIDATION_ERROR"},
		{"cursor forged", request{method: http.MethodGet, path: "/api/sessions", headers: bearer(tok), query: map[string]string{"cursor": "eyJwayI6IngiLCJ1c2VySWQiOiJ5In0"}}, 400, "VALIDATION_ERROR"},
		{"cursor for all", request{method: http.MethodGet, path: "/api/sessions", headers: bearer(tok), query: map[string]string{"all": "true", "cursor": "eyJwayI6IngifQ"}}, 400, "VALIDATION_ERROR"},
		{"delete all bad user", request{method: http.MethodDelete, path: "/api/sessions", headers: bearer(tok), query: map[string]string{"userId": "-"}}, 400, "VALIDATION_ERROR"},
		{"delete all unknown user", request{method: http.MethodDelete, path: "/api/sessions", headers: bearer(tok), query: map[string]string{"userId": "nobody_1"}}, 404, "NOT_FOUND"},
		{"delete bad handle", request{method: http.MethodDelete, path: "/api/sessions/xyz", headers: bearer(tok)}, 404, "NOT_FOUND"},
		{"delete unknown handle", request{method: http.MethodDelete, path: "/api/sessions/0123456789abcdef", headers: bearer(tok)}, 404, "NOT_FOUND"},
		{"wrong method", request{method: http.MethodPost, path: "/api/sessions", headers: bearer(tok)}, 405, "METHOD_NOT_ALLOWED"},
		{"wrong method count", request{method: http.MethodDelete, path: "/api/sessions/count/x", headers: bearer(tok)}, 404, "NOT_FOUND"},
		{"unknown path", request{method: http.MethodGet, path: "/api/sessions/a/b", headers: bearer(tok)}, 404, "NOT_FOUND"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.do(t, tc.req)
			if res.status != tc.status || res.str("code") != tc.code || res.body["success"] != false {
				t.Fatalf("got %d %s, want %d %s: %s", res.status, res.str("code"), tc.status, tc.code, res.raw)
			}
		})
	}
}

func TestCount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"SESSION_TTL": "3600"})
	admin := e.login(t, masterName, e.masterPassword)
	pw := randomPassword(t)
	e.createUser(t, admin, "counted", pw, "staff_tester")
	staff := e.login(t, "counted", pw)
	e.login(t, "counted", pw)
	res := e.do(t, request{method: http.MethodGet, path: "/api/sessions/count", headers: bearer(staff)}) // staff_tester has systemMonitoring
	if res.status != 200 || res.body["count"] != float64(3) || res.body["approximate"] != false {
		t.Fatalf("%d %s", res.status, res.raw)
	}
	e.clock.Advance(30 * time.Minute)
	e.login(t, masterName, e.masterPassword)
	e.clock.Advance(31 * time.Minute) // the first three idle-expired
	fresh := e.login(t, masterName, e.masterPassword)
	res = e.do(t, request{method: http.MethodGet, path: "/api/sessions/count", headers: bearer(fresh)})
	if res.body["count"] != float64(2) {
		t.Fatalf("after expiry: %s", res.raw)
	}
}

func TestEndOneAndAll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	t1 := e.login(t, masterName, e.masterPassword)
	t2 := e.login(t, masterName, e.masterPassword)
	h2 := e.handleOf(t, t2)
	res := e.do(t, request{method: http.MethodDelete, path: "/api/sessions/" + h2, headers: bearer(t1)})
	if res.status != 200 || res.body["success"] != true {
		t.Fatalf("end one: %d %s", res.status, res.raw)
	}
	if e.valid(t, t2) {
		t.Fatal("ended session still valid")
	}
	if !e.valid(t, t1) {
		t.Fatal("ending another session ended the caller's")
	}
	if res := e.do(t, request{method: http.MethodDelete, path: "/api/sessions/" + h2, headers: bearer(t1)}); res.status != 404 {
		t.Fatalf("ending it twice: %d", res.status)
	}
	// Ending the current session through the cookie clears the cookie.
	h1 := e.handleOf(t, t1)
	res = e.do(t, request{method: http.MethodDelete, path: "/api/sessions/" + h1, cookies: []string{"zenith_session=" + t1}, headers: map[string]string{"origin": allowedOrigin}})
	if res.status != 200 || !reflect.DeepEqual(res.cookies, []string{"zenith_session=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0"}) {
		t.Fatalf("end current: %d %v %s", res.status, res.cookies, res.raw)
	}
	if e.valid(t, t1) {
		t.Fatal("ended current session still valid")
	}
	// End all.
	a, b, c := e.login(t, masterName, e.masterPassword), e.login(t, masterName, e.masterPassword), e.login(t, masterName, e.masterPassword)
	res = e.do(t, request{method: http.MethodDelete, path: "/api/sessions", headers: bearer(a)})
	if res.status != 200 || res.body["success"] != true || res.body["ended"] != float64(3) {
		t.Fatalf("end all: %d %s", res.status, res.raw)
	}
	for _, tok := range []string{a, b, c} {
		if e.valid(t, tok) {
			t.Fatal("a session survived end all")
		}
	}
	// A fresh login works after end all.
	if !e.valid(t, e.login(t, masterName, e.masterPassword)) {
		t.Fatal("login after end all is invalid")
	}
}

// TestIDOR: without userManagement a user cannot list or end another user's
// sessions; another user's handle is a 404, exactly like an unknown one.
func TestIDOR(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	admin := e.login(t, masterName, e.masterPassword)
	pwA, pwB := randomPassword(t), randomPassword(t)
	e.createUser(t, admin, "user_a", pwA, "staff_tester")
	e.createUser(t, admin, "user_b", pwB, "staff_tester")
	a := e.login(t, "user_a", pwA)
	b := e.login(t, "user_b", pwB)
	hb := e.handleOf(t, b)

	del := e.do(t, request{method: http.MethodDelete, path: "/api/sessions/" + hb, headers: bearer(a)})
	unknown := e.do(t, request{method: http.MethodDelete, path: "/api/sessions/0123456789abcdef", headers: bearer(a)})
	if del.status != 404 || del.str("code") != "NOT_FOUND" {
		t.Fatalf("deleting b's session as a: %d %s", del.status, del.raw)
	}
	delete(del.body, "requestId")
	delete(unknown.body, "requestId")
	if !reflect.DeepEqual(del.body, unknown.body) {
		t.Fatalf("another user's handle answers differently from an unknown one: %v vs %v", del.body, unknown.body)
	}
	if !e.valid(t, b) {
		t.Fatal("b's session was ended by a")
	}
	for name, req := range map[string]request{
		"list b":       {method: http.MethodGet, path: "/api/sessions", headers: bearer(a), query: map[string]string{"userId": "user_b"}},
		"list all":     {method: http.MethodGet, path: "/api/sessions", headers: bearer(a), query: map[string]string{"all": "true"}},
		"end all of b": {method: http.MethodDelete, path: "/api/sessions", headers: bearer(a), query: map[string]string{"userId": "USER_B"}},
	} {
		t.Run(name, func(t *testing.T) {
			res := e.do(t, req)
			if res.status != 403 || res.str("code") != "FORBIDDEN" {
				t.Fatalf("%d %s", res.status, res.raw)
			}
		})
	}
	if !e.valid(t, b) {
		t.Fatal("b's session was ended by a")
	}
	// a may name themselves.
	if res := e.do(t, request{method: http.MethodGet, path: "/api/sessions", headers: bearer(a), query: map[string]string{"userId": "User_A"}}); res.status != 200 || len(res.sessions()) != 1 {
		t.Fatalf("own listing by userId: %d %s", res.status, res.raw)
	}

	// With userManagement the admin can do all of it.
	res := e.do(t, request{method: http.MethodGet, path: "/api/sessions", headers: bearer(admin), query: map[string]string{"userId": "user_b"}})
	if res.status != 200 || len(res.sessions()) != 1 || res.sessions()[0]["id"] != hb || res.sessions()[0]["userId"] != "user_b" {
		t.Fatalf("admin listing b: %s", res.raw)
	}
	res = e.do(t, request{method: http.MethodGet, path: "/api/sessions", headers: bearer(admin), query: map[string]string{"all": "true"}})
	if res.status != 200 || len(res.sessions()) != 3 {
		t.Fatalf("admin listing all: %s", res.raw)
	}
	// The same through pages of one (a scan: a page may be short).
	seen := map[string]bool{}
	cursor := ""
	for i := 0; i < 20; i++ {
		q := map[string]string{"all": "true", "limit": "1"}
		if cursor != "" {
			q["cursor"] = cursor
		}
		page := e.do(t, request{method: http.MethodGet, path: "/api/sessions", headers: bearer(admin), query: q})
		if page.status != 200 || len(page.sessions()) > 1 {
			t.Fatalf("page: %d %s", page.status, page.raw)
		}
		for _, s := range page.sessions() {
			seen[s["id"].(string)] = true
		}
		if cursor = page.str("cursor"); cursor == "" {
			break
		}
	}
	if len(seen) != 3 || !seen[hb] {
		t.Fatalf("paged admin listing saw %v", seen)
	}
	if res := e.do(t, request{method: http.MethodDelete, path: "/api/sessions/" + hb, headers: bearer(admin)}); res.status != 200 {
		t.Fatalf("admin ending b's session: %d %s", res.status, res.raw)
	}
	if e.valid(t, b) {
		t.Fatal("b's session survived the admin")
	}
	if res := e.do(t, request{method: http.MethodDelete, path: "/api/sessions", headers: bearer(admin), query: map[string]string{"userId": "user_a"}}); res.status != 200 {
		t.Fatalf("admin ending all of a's: %d %s", res.status, res.raw)
	}
	if e.valid(t, a) {
		t.Fatal("a's session survived end all by the admin")
	}
	if !e.valid(t, admin) {
		t.Fatal("the admin's own session ended")
	}
}

// TestCSRF: a cookie-authenticated DELETE with a foreign Origin is refused;
// the same call with a bearer token is not affected.
func TestCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	t1 := e.login(t, masterName, e.masterPassword)
	t2 := e.login(t, masterName, e.masterPassword)
	h2 := e.handleOf(t, t2)
	for name, origin := range map[string]string{"foreign": "https://evil.example", "none": "", "lookalike": "https://app.zenith.example.evil.example"} {
		t.Run(name, func(t *testing.T) {
			req := request{method: http.MethodDelete, path: "/api/sessions/" + h2, cookies: []string{"zenith_session=" + t1}}
			if origin != "" {
				req.headers = map[string]string{"origin": origin}
			}
			res := e.do(t, req)
			if res.status != 403 || res.str("code") != "CSRF_REJECTED" {
				t.Fatalf("%d %s", res.status, res.raw)
			}
			all := e.do(t, request{method: http.MethodDelete, path: "/api/sessions", cookies: []string{"zenith_session=" + t1}, headers: req.headers})
			if all.status != 403 || all.str("code") != "CSRF_REJECTED" {
				t.Fatalf("end all: %d %s", all.status, all.raw)
			}
		})
	}
	if !e.valid(t, t2) || !e.valid(t, t1) {
		t.Fatal("a refused request ended a session")
	}
	// A cookie GET is not an unsafe method.
	if res := e.do(t, request{method: http.MethodGet, path: "/api/sessions", cookies: []string{"zenith_session=" + t1}, headers: map[string]string{"origin": "https://evil.example"}}); res.status != 200 {
		t.Fatalf("cookie GET: %d", res.status)
	}
	// Header-authenticated calls are not affected by Origin.
	res := e.do(t, request{method: http.MethodDelete, path: "/api/sessions/" + h2, headers: map[string]string{"authorization": "Bearer " + t1, "origin": "https://evil.example"}})
	if res.status != 200 {
		t.Fatalf("bearer DELETE with a foreign origin: %d %s", res.status, res.raw)
	}
}

// TestRevocationAcrossFunctions: a role change made through the auth
// function ends the user's session in a session-function instance at once,
// and a session created by one instance is valid in a new one.
func TestRevocationAcrossFunctions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	admin := e.login(t, masterName, e.masterPassword)
	pw := randomPassword(t)
	e.createUser(t, admin, "moved", pw, "staff_tester")
	tok := e.login(t, "moved", pw)
	fresh := e.newSessionApp(t) // restart: a new instance with a new client
	if res := handle(t, fresh, request{method: http.MethodGet, path: "/api/sessions", headers: bearer(tok)}); res.status != 200 {
		t.Fatalf("session not valid in a new instance: %d %s", res.status, res.raw)
	}
	res := handle(t, e.auth, request{method: http.MethodPatch, path: "/api/auth/users/moved", headers: bearer(admin), body: `{"role":"master_admin"}`})
	if res.status != 200 {
		t.Fatalf("role change: %d %s", res.status, res.raw)
	}
	for _, app := range []struct {
		name string
		req  request
	}{
		{"list", request{method: http.MethodGet, path: "/api/sessions", headers: bearer(tok)}},
		{"count", request{method: http.MethodGet, path: "/api/sessions/count", headers: bearer(tok)}},
	} {
		if res := handle(t, fresh, app.req); res.status != 401 {
			t.Fatalf("%s after the role change: %d", app.name, res.status)
		}
	}
}
