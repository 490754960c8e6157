package sessionapi_test

import (
	"net/http"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
)

var isoPattern = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

func TestListOwnSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	t1 := e.login(t, masterName, e.masterPassword)
	e.clock.Advance(time.Minute)
	t2 := e.login(t, masterName, e.masterPassword)
	res := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(t2)})
	if res.Status != 200 {
		t.Fatalf("%d %s", res.Status, res.Raw)
	}
	list := sessionsOf(res)
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
		if len(id) != 16 || id == t1 || id == t2 || contains(res.Raw, t1) || contains(res.Raw, t2) {
			t.Fatalf("listing exposes a token or a bad handle: %s", res.Raw)
		}
		if s["current"] == true {
			current++
		}
	}
	if current != 1 {
		t.Fatalf("%d current sessions", current)
	}
	if _, has := res.Body["cursor"]; has {
		t.Fatal("a complete listing carries a cursor")
	}
	// Pagination.
	res = e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(t2), Query: map[string]string{"limit": "1"}})
	if len(sessionsOf(res)) != 1 || res.Str("cursor") == "" {
		t.Fatalf("page 1: %s", res.Raw)
	}
	res2 := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(t2), Query: map[string]string{"limit": "1", "cursor": res.Str("cursor")}})
	if len(sessionsOf(res2)) != 1 || sessionsOf(res2)[0]["id"] == sessionsOf(res)[0]["id"] {
		t.Fatalf("page 2: %s", res2.Raw)
	}
}

func TestSessionValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok := e.login(t, masterName, e.masterPassword)
	tests := []struct {
		name   string
		req    apitest.Request
		status int
		code   string
	}{
		{"no token list", apitest.Request{Method: http.MethodGet, Path: "/api/sessions"}, 401, "UNAUTHORIZED"},
		{"no token count", apitest.Request{Method: http.MethodGet, Path: "/api/sessions/count"}, 401, "UNAUTHORIZED"},
		{"no token delete", apitest.Request{Method: http.MethodDelete, Path: "/api/sessions/0123456789abcdef"}, 401, "UNAUTHORIZED"},
		{"no token delete all", apitest.Request{Method: http.MethodDelete, Path: "/api/sessions"}, 401, "UNAUTHORIZED"},
		{"bad token", apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer("session_101010_nope")}, 401, "UNAUTHORIZED"},
		{"limit zero", apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(tok), Query: map[string]string{"limit": "0"}}, 400, "VALIDATION_ERROR"},
		{"limit big", apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(tok), Query: map[string]string{"limit": "101"}}, 400, "VALIDATION_ERROR"},
		{"limit float", apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(tok), Query: map[string]string{"limit": "1.5"}}, 400, "VALIDATION_ERROR"},
		{"all bad", apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(tok), Query: map[string]string{"all": "yes"}}, 400, "VALIDATION_ERROR"},
		{"userId bad", apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(tok), Query: map[string]string{"userId": "a b"}}, 400, "VALIDATION_ERROR"},
		{"userId and all", apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(tok), Query: map[string]string{"userId": "abc", "all": "true"}}, 400, "VALIDATION_ERROR"},
		{"cursor junk", apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(tok), Query: map[string]string{"cursor": "%%%"}}, 400, "VALIDATION_ERROR"},
		{"cursor forged", apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(tok), Query: map[string]string{"cursor": "eyJwayI6IngiLCJ1c2VySWQiOiJ5In0"}}, 400, "VALIDATION_ERROR"},
		{"cursor for all", apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(tok), Query: map[string]string{"all": "true", "cursor": "eyJwayI6IngifQ"}}, 400, "VALIDATION_ERROR"},
		{"delete all bad user", apitest.Request{Method: http.MethodDelete, Path: "/api/sessions", Headers: apitest.Bearer(tok), Query: map[string]string{"userId": "-"}}, 400, "VALIDATION_ERROR"},
		{"delete all unknown user", apitest.Request{Method: http.MethodDelete, Path: "/api/sessions", Headers: apitest.Bearer(tok), Query: map[string]string{"userId": "nobody_1"}}, 404, "NOT_FOUND"},
		{"delete bad handle", apitest.Request{Method: http.MethodDelete, Path: "/api/sessions/xyz", Headers: apitest.Bearer(tok)}, 404, "NOT_FOUND"},
		{"delete unknown handle", apitest.Request{Method: http.MethodDelete, Path: "/api/sessions/0123456789abcdef", Headers: apitest.Bearer(tok)}, 404, "NOT_FOUND"},
		{"wrong method", apitest.Request{Method: http.MethodPost, Path: "/api/sessions", Headers: apitest.Bearer(tok)}, 405, "METHOD_NOT_ALLOWED"},
		{"wrong method count", apitest.Request{Method: http.MethodDelete, Path: "/api/sessions/count/x", Headers: apitest.Bearer(tok)}, 404, "NOT_FOUND"},
		{"unknown path", apitest.Request{Method: http.MethodGet, Path: "/api/sessions/a/b", Headers: apitest.Bearer(tok)}, 404, "NOT_FOUND"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.do(t, tc.req)
			if res.Status != tc.status || res.Str("code") != tc.code || res.Body["success"] != false {
				t.Fatalf("got %d %s, want %d %s: %s", res.Status, res.Str("code"), tc.status, tc.code, res.Raw)
			}
		})
	}
}

func TestCount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"SESSION_TTL": "3600"})
	admin := e.login(t, masterName, e.masterPassword)
	pw := apitest.RandomPassword(t)
	e.createUser(t, admin, "counted", pw, "staff_tester")
	staff := e.login(t, "counted", pw)
	e.login(t, "counted", pw)
	res := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/sessions/count", Headers: apitest.Bearer(staff)}) // staff_tester has systemMonitoring
	if res.Status != 200 || res.Body["count"] != float64(3) || res.Body["approximate"] != false {
		t.Fatalf("%d %s", res.Status, res.Raw)
	}
	e.clock.Advance(30 * time.Minute)
	e.login(t, masterName, e.masterPassword)
	e.clock.Advance(31 * time.Minute) // the first three idle-expired
	fresh := e.login(t, masterName, e.masterPassword)
	res = e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/sessions/count", Headers: apitest.Bearer(fresh)})
	if res.Body["count"] != float64(2) {
		t.Fatalf("after expiry: %s", res.Raw)
	}
}

func TestEndOneAndAll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	t1 := e.login(t, masterName, e.masterPassword)
	t2 := e.login(t, masterName, e.masterPassword)
	h2 := e.handleOf(t, t2)
	res := e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/sessions/" + h2, Headers: apitest.Bearer(t1)})
	if res.Status != 200 || res.Body["success"] != true {
		t.Fatalf("end one: %d %s", res.Status, res.Raw)
	}
	if e.valid(t, t2) {
		t.Fatal("ended session still valid")
	}
	if !e.valid(t, t1) {
		t.Fatal("ending another session ended the caller's")
	}
	if res := e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/sessions/" + h2, Headers: apitest.Bearer(t1)}); res.Status != 404 {
		t.Fatalf("ending it twice: %d", res.Status)
	}
	// Ending the current session through the cookie clears the cookie.
	h1 := e.handleOf(t, t1)
	res = e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/sessions/" + h1, Cookies: []string{"zenith_session=" + t1}, Headers: map[string]string{"origin": allowedOrigin}})
	if res.Status != 200 || !reflect.DeepEqual(res.Cookies, []string{"zenith_session=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0"}) {
		t.Fatalf("end current: %d %v %s", res.Status, res.Cookies, res.Raw)
	}
	if e.valid(t, t1) {
		t.Fatal("ended current session still valid")
	}
	// End all.
	a, b, c := e.login(t, masterName, e.masterPassword), e.login(t, masterName, e.masterPassword), e.login(t, masterName, e.masterPassword)
	res = e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/sessions", Headers: apitest.Bearer(a)})
	if res.Status != 200 || res.Body["success"] != true || res.Body["ended"] != float64(3) {
		t.Fatalf("end all: %d %s", res.Status, res.Raw)
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
	pwA, pwB := apitest.RandomPassword(t), apitest.RandomPassword(t)
	e.createUser(t, admin, "user_a", pwA, "staff_tester")
	e.createUser(t, admin, "user_b", pwB, "staff_tester")
	a := e.login(t, "user_a", pwA)
	b := e.login(t, "user_b", pwB)
	hb := e.handleOf(t, b)

	del := e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/sessions/" + hb, Headers: apitest.Bearer(a)})
	unknown := e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/sessions/0123456789abcdef", Headers: apitest.Bearer(a)})
	if del.Status != 404 || del.Str("code") != "NOT_FOUND" {
		t.Fatalf("deleting b's session as a: %d %s", del.Status, del.Raw)
	}
	delete(del.Body, "requestId")
	delete(unknown.Body, "requestId")
	if !reflect.DeepEqual(del.Body, unknown.Body) {
		t.Fatalf("another user's handle answers differently from an unknown one: %v vs %v", del.Body, unknown.Body)
	}
	if !e.valid(t, b) {
		t.Fatal("b's session was ended by a")
	}
	for name, req := range map[string]apitest.Request{
		"list b":       {Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(a), Query: map[string]string{"userId": "user_b"}},
		"list all":     {Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(a), Query: map[string]string{"all": "true"}},
		"end all of b": {Method: http.MethodDelete, Path: "/api/sessions", Headers: apitest.Bearer(a), Query: map[string]string{"userId": "USER_B"}},
	} {
		t.Run(name, func(t *testing.T) {
			res := e.do(t, req)
			if res.Status != 403 || res.Str("code") != "FORBIDDEN" {
				t.Fatalf("%d %s", res.Status, res.Raw)
			}
		})
	}
	if !e.valid(t, b) {
		t.Fatal("b's session was ended by a")
	}
	// a may name themselves.
	if res := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(a), Query: map[string]string{"userId": "User_A"}}); res.Status != 200 || len(sessionsOf(res)) != 1 {
		t.Fatalf("own listing by userId: %d %s", res.Status, res.Raw)
	}

	// With userManagement the admin can do all of it.
	res := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(admin), Query: map[string]string{"userId": "user_b"}})
	if res.Status != 200 || len(sessionsOf(res)) != 1 || sessionsOf(res)[0]["id"] != hb || sessionsOf(res)[0]["userId"] != "user_b" {
		t.Fatalf("admin listing b: %s", res.Raw)
	}
	res = e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(admin), Query: map[string]string{"all": "true"}})
	if res.Status != 200 || len(sessionsOf(res)) != 3 {
		t.Fatalf("admin listing all: %s", res.Raw)
	}
	// The same through pages of one (a scan: a page may be short).
	seen := map[string]bool{}
	cursor := ""
	for i := 0; i < 20; i++ {
		q := map[string]string{"all": "true", "limit": "1"}
		if cursor != "" {
			q["cursor"] = cursor
		}
		page := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(admin), Query: q})
		if page.Status != 200 || len(sessionsOf(page)) > 1 {
			t.Fatalf("page: %d %s", page.Status, page.Raw)
		}
		for _, s := range sessionsOf(page) {
			seen[s["id"].(string)] = true
		}
		if cursor = page.Str("cursor"); cursor == "" {
			break
		}
	}
	if len(seen) != 3 || !seen[hb] {
		t.Fatalf("paged admin listing saw %v", seen)
	}
	if res := e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/sessions/" + hb, Headers: apitest.Bearer(admin)}); res.Status != 200 {
		t.Fatalf("admin ending b's session: %d %s", res.Status, res.Raw)
	}
	if e.valid(t, b) {
		t.Fatal("b's session survived the admin")
	}
	if res := e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/sessions", Headers: apitest.Bearer(admin), Query: map[string]string{"userId": "user_a"}}); res.Status != 200 {
		t.Fatalf("admin ending all of a's: %d %s", res.Status, res.Raw)
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
			req := apitest.Request{Method: http.MethodDelete, Path: "/api/sessions/" + h2, Cookies: []string{"zenith_session=" + t1}}
			if origin != "" {
				req.Headers = map[string]string{"origin": origin}
			}
			res := e.do(t, req)
			if res.Status != 403 || res.Str("code") != "CSRF_REJECTED" {
				t.Fatalf("%d %s", res.Status, res.Raw)
			}
			all := e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/sessions", Cookies: []string{"zenith_session=" + t1}, Headers: req.Headers})
			if all.Status != 403 || all.Str("code") != "CSRF_REJECTED" {
				t.Fatalf("end all: %d %s", all.Status, all.Raw)
			}
		})
	}
	if !e.valid(t, t2) || !e.valid(t, t1) {
		t.Fatal("a refused request ended a session")
	}
	// A cookie GET is not an unsafe method.
	if res := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Cookies: []string{"zenith_session=" + t1}, Headers: map[string]string{"origin": "https://evil.example"}}); res.Status != 200 {
		t.Fatalf("cookie GET: %d", res.Status)
	}
	// A foreign Origin is refused whatever the credentials (API.md), a bearer
	// token included; without Origin a header-authenticated call is a
	// non-browser client's and goes through.
	res := e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/sessions/" + h2, Headers: map[string]string{"authorization": "Bearer " + t1, "origin": "https://evil.example"}})
	if res.Status != 403 || res.Str("code") != "CSRF_REJECTED" {
		t.Fatalf("bearer DELETE with a foreign origin: %d %s", res.Status, res.Raw)
	}
	res = e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/sessions/" + h2, Headers: apitest.Bearer(t1)})
	if res.Status != 200 {
		t.Fatalf("bearer DELETE without Origin: %d %s", res.Status, res.Raw)
	}
}

// TestRevocationAcrossFunctions: a role change made through the auth
// function ends the user's session in a session-function instance at once,
// and a session created by one instance is valid in a new one.
func TestRevocationAcrossFunctions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	admin := e.login(t, masterName, e.masterPassword)
	pw := apitest.RandomPassword(t)
	e.createUser(t, admin, "moved", pw, "staff_tester")
	tok := e.login(t, "moved", pw)
	fresh := e.newSessionApp(t) // restart: a new instance with a new client
	if res := apitest.Do(t, fresh.Handle, apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(tok)}.Event()); res.Status != 200 {
		t.Fatalf("session not valid in a new instance: %d %s", res.Status, res.Raw)
	}
	res := e.doAuth(t, apitest.Request{Method: http.MethodPatch, Path: "/api/auth/users/moved", Headers: apitest.Bearer(admin), Body: `{"role":"master_admin"}`})
	if res.Status != 200 {
		t.Fatalf("role change: %d %s", res.Status, res.Raw)
	}
	for _, app := range []struct {
		name string
		req  apitest.Request
	}{
		{"list", apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(tok)}},
		{"count", apitest.Request{Method: http.MethodGet, Path: "/api/sessions/count", Headers: apitest.Bearer(tok)}},
	} {
		if res := apitest.Do(t, fresh.Handle, app.req.Event()); res.Status != 401 {
			t.Fatalf("%s after the role change: %d", app.name, res.Status)
		}
	}
}
