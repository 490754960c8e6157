package authapi_test

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

func TestStaffUserRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	admin := e.login(t, masterName, e.masterPassword)
	h := apitest.Bearer(admin)
	pw := apitest.RandomPassword(t)

	t.Run("create", func(t *testing.T) {
		res := e.do(t, apitest.Request{Method: http.MethodPost, Path: "/api/auth/users", Headers: h,
			Body: apitest.JSON(t, map[string]any{"username": "Carol_1", "password": pw, "role": "staff_tester", "name": "Carol"})})
		if res.Status != 201 || res.Body["success"] != true {
			t.Fatalf("%d %s", res.Status, res.Raw)
		}
		u, _ := res.Body["user"].(map[string]any)
		if u["username"] != "Carol_1" || u["role"] != "staff_tester" || u["name"] != "Carol" || u["active"] != true {
			t.Fatalf("user = %v", u)
		}
		if strings.Contains(res.Raw, pw) || strings.Contains(res.Raw, "argon2") {
			t.Fatal("create response leaks the password or hash")
		}
	})
	t.Run("name defaults to username", func(t *testing.T) {
		res := e.do(t, apitest.Request{Method: http.MethodPost, Path: "/api/auth/users", Headers: h,
			Body: apitest.JSON(t, map[string]any{"username": "dave_1", "password": pw, "role": "staff_tester"})})
		if res.Status != 201 || res.Get("user.name") != "dave_1" {
			t.Fatalf("%d %s", res.Status, res.Raw)
		}
	})
	createCases := []struct {
		name    string
		body    string
		status  int
		code    string
		details []string
	}{
		{"duplicate other case", apitest.JSON(t, map[string]any{"username": "CAROL_1", "password": pw, "role": "staff_tester"}), 409, "USER_EXISTS", nil},
		{"duplicate master", apitest.JSON(t, map[string]any{"username": strings.ToLower(masterName), "password": pw, "role": "master_admin"}), 409, "USER_EXISTS", nil},
		{"unknown role", apitest.JSON(t, map[string]any{"username": "erin_1", "password": pw, "role": "superuser"}), 400, "VALIDATION_ERROR", []string{"Role does not exist"}},
		{"missing all", `{}`, 400, "VALIDATION_ERROR", []string{"Username is required", "Password is required", "Role is required"}},
		{"bad name", apitest.JSON(t, map[string]any{"username": "erin_1", "password": pw, "role": "staff_tester", "name": "  "}), 400, "VALIDATION_ERROR", []string{"Name must be between 1 and 100 characters"}},
		{"control name", apitest.JSON(t, map[string]any{"username": "erin_1", "password": pw, "role": "staff_tester", "name": "a\u0007b"}), 400, "VALIDATION_ERROR", []string{"Name must not contain control characters"}},
		{"unknown field", `{"username":"erin_1","password":"12345678","role":"staff_tester","admin":true}`, 400, "VALIDATION_ERROR", []string{`unknown field "admin"`}},
		{"empty", ``, 400, "EMPTY_BODY", nil},
		{"not json", `nope`, 400, "JSON_PARSE_ERROR", nil},
	}
	for _, tc := range createCases {
		t.Run("create "+tc.name, func(t *testing.T) {
			res := e.do(t, apitest.Request{Method: http.MethodPost, Path: "/api/auth/users", Headers: h, Body: tc.body})
			checkError(t, res, tc.status, tc.code, tc.details)
		})
	}

	t.Run("list paginated", func(t *testing.T) {
		seen := map[string]bool{}
		cursor := ""
		for page := 0; page < 20; page++ {
			q := map[string]string{"limit": "1"}
			if cursor != "" {
				q["cursor"] = cursor
			}
			res := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/auth/users", Headers: h, Query: q})
			if res.Status != 200 {
				t.Fatalf("%d %s", res.Status, res.Raw)
			}
			list, _ := res.Body["users"].([]any)
			if len(list) > 1 {
				t.Fatalf("page of %d with limit 1", len(list))
			}
			for _, u := range list {
				m := u.(map[string]any)
				seen[m["username"].(string)] = true
				if _, has := m["passwordHash"]; has {
					t.Fatal("listing shows the hash")
				}
			}
			cursor = res.Str("cursor")
			if cursor == "" {
				break
			}
		}
		want := map[string]bool{masterName: true, "Carol_1": true, "dave_1": true}
		if !reflect.DeepEqual(seen, want) {
			t.Fatalf("listed %v, want %v", seen, want)
		}
	})
	for name, q := range map[string]map[string]string{
		"limit zero":  {"limit": "0"},
		"limit big":   {"limit": "101"},
		"limit text":  {"limit": "ten"},
		"limit plus":  {"limit": "+5"},
		"cursor junk": {"cursor": "!!"},
		"cursor key":  {"cursor": "eyJwayI6InNlc3Npb24jeCJ9"}, // {"pk":"session#x"}
	} {
		t.Run("list "+name, func(t *testing.T) {
			res := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/auth/users", Headers: h, Query: q})
			checkError(t, res, 400, "VALIDATION_ERROR", nil)
		})
	}

	patchCases := []struct {
		name    string
		user    string
		body    string
		status  int
		code    string
		details []string
	}{
		{"empty object", "Carol_1", `{}`, 400, "VALIDATION_ERROR", []string{"At least one of role, name, active or password is required"}},
		{"short password", "Carol_1", `{"password":"short"}`, 400, "VALIDATION_ERROR", []string{"Password must be between 8 and 100 characters"}},
		{"active type", "Carol_1", `{"active":"no"}`, 400, "VALIDATION_ERROR", []string{"active must be of type boolean"}},
		{"empty role", "Carol_1", `{"role":""}`, 400, "VALIDATION_ERROR", []string{"Role must not be empty"}},
		{"unknown role", "Carol_1", `{"role":"root"}`, 400, "VALIDATION_ERROR", []string{"Role does not exist"}},
		{"unknown field", "Carol_1", `{"username":"x"}`, 400, "VALIDATION_ERROR", []string{`unknown field "username"`}},
		{"unknown user", "nobody_1", `{"name":"X"}`, 404, "NOT_FOUND", nil},
		{"bad username", "a-b", `{"name":"X"}`, 404, "NOT_FOUND", nil},
		{"master user demote", masterName, `{"role":"staff_tester"}`, 409, "PROTECTED_USER", nil},
		{"master user deactivate", masterName, `{"active":false}`, 409, "PROTECTED_USER", nil},
	}
	for _, tc := range patchCases {
		t.Run("patch "+tc.name, func(t *testing.T) {
			res := e.do(t, apitest.Request{Method: http.MethodPatch, Path: "/api/auth/users/" + tc.user, Headers: h, Body: tc.body})
			checkError(t, res, tc.status, tc.code, tc.details)
		})
	}
	t.Run("delete master user", func(t *testing.T) {
		res := e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/auth/users/" + strings.ToLower(masterName), Headers: h})
		checkError(t, res, 409, "PROTECTED_USER", nil)
	})
	t.Run("delete unknown", func(t *testing.T) {
		res := e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/auth/users/nobody_1", Headers: h})
		checkError(t, res, 404, "NOT_FOUND", nil)
	})
	t.Run("name change keeps sessions", func(t *testing.T) {
		carol := e.login(t, "carol_1", pw)
		res := e.do(t, apitest.Request{Method: http.MethodPatch, Path: "/api/auth/users/carol_1", Headers: h, Body: `{"name":"Carol B"}`})
		if res.Status != 200 || res.Get("user.name") != "Carol B" || res.Body["sessionsEnded"] != false {
			t.Fatalf("%d %s", res.Status, res.Raw)
		}
		if s := e.validateStatus(t, carol); s != 200 {
			t.Fatalf("a name change ended the session: %d", s)
		}
	})
	t.Run("last admin", func(t *testing.T) {
		res := e.do(t, apitest.Request{Method: http.MethodPatch, Path: "/api/auth/users/Carol_1", Headers: h, Body: `{"role":"master_admin"}`})
		if res.Status != 200 || res.Body["sessionsEnded"] != true {
			t.Fatalf("promote: %d %s", res.Status, res.Raw)
		}
		// The master user is protected from the API; an operator demotes it in
		// the table, which leaves Carol the last active admin.
		role := users.RoleStaffTester
		if _, _, err := users.New(e.env.Client, e.env.Tables.Users, e.clock, nil).Update(context.Background(), users.Actor{Username: "operator"}, masterName, users.Changes{Role: &role}); err != nil {
			t.Fatalf("demote the master user in the store: %v", err)
		}
		// The master's own session ended with the role change; Carol is now the last admin.
		if s := e.validateStatus(t, admin); s != 401 {
			t.Fatalf("demoted admin's session still valid: %d", s)
		}
		carol := e.login(t, "carol_1", pw)
		res = e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/auth/users/carol_1", Headers: apitest.Bearer(carol)})
		checkError(t, res, 409, "LAST_ADMIN", nil)
	})
}

func checkError(t *testing.T, res apitest.Response, status int, code string, details []string) {
	t.Helper()
	if res.Status != status || res.Str("code") != code {
		t.Fatalf("got %d %s, want %d %s: %s", res.Status, res.Str("code"), status, code, res.Raw)
	}
	if res.Body["success"] != false || res.Str("error") == "" {
		t.Fatalf("not the standard error envelope: %s", res.Raw)
	}
	if details != nil {
		var got []string
		for _, d := range res.Body["details"].([]any) {
			got = append(got, d.(string))
		}
		if !reflect.DeepEqual(got, details) {
			t.Fatalf("details = %q, want %q", got, details)
		}
	}
}

// TestRevocation: a role change, a password change and a deactivation each
// reject the user's existing sessions on the very next request.
func TestRevocation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	admin := e.login(t, masterName, e.masterPassword)
	h := apitest.Bearer(admin)
	pw := apitest.RandomPassword(t)
	e.createUser(t, admin, "victim_1", pw, "staff_tester")
	tests := []struct {
		name   string
		method string
		body   string
		next   string // password for the next login, "" when none is possible
	}{
		{"role change", http.MethodPatch, `{"role":"master_admin"}`, pw},
		{"role change back", http.MethodPatch, `{"role":"staff_tester"}`, pw},
		{"password change", http.MethodPatch, apitest.JSON(t, map[string]any{"password": pw + "-new"}), pw + "-new"},
		{"same password set again", http.MethodPatch, apitest.JSON(t, map[string]any{"password": pw + "-new"}), pw + "-new"},
		{"deactivation", http.MethodDelete, "", ""},
	}
	current := pw
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := e.login(t, "victim_1", current)
			other := e.login(t, "victim_1", current)
			if s := e.validateStatus(t, tok); s != 200 {
				t.Fatalf("fresh session invalid: %d", s)
			}
			res := e.do(t, apitest.Request{Method: tc.method, Path: "/api/auth/users/victim_1", Headers: h, Body: tc.body})
			if res.Status != 200 {
				t.Fatalf("%s: %d %s", tc.name, res.Status, res.Raw)
			}
			for _, tk := range []string{tok, other} {
				if s := e.validateStatus(t, tk); s != 401 {
					t.Fatalf("session survived the %s: %d", tc.name, s)
				}
			}
			if tc.next != "" {
				current = tc.next
				if tc.next != pw {
					if r := e.do(t, loginReq(t, "victim_1", pw)); r.Status != 401 {
						t.Fatalf("old password still works: %d", r.Status)
					}
				}
			}
		})
	}
	if s := e.validateStatus(t, admin); s != 200 {
		t.Fatalf("the admin's own session was affected: %d", s)
	}
}
