package sessionapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// TestEndOneOfEndedSession: DELETE /api/sessions/{id} of a session that has
// already ended (idle or absolute expiry, or a session-version bump) while
// its item still exists is the same 404 as an unknown one, for its owner and
// for staff with userManagement; the dead item is deleted.
func TestEndOneOfEndedSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"SESSION_TTL": "3600", "SESSION_MAX_LIFETIME": "7200", "SESSION_TOUCH_INTERVAL": "60"})
	ctx := context.Background()
	admin := e.login(t, masterName, e.masterPassword)
	pw := apitest.RandomPassword(t)
	e.createUser(t, admin, "ender", pw, "staff_tester")
	store := users.New(e.env.Client, e.env.Tables.Users, e.clock, nil)

	tests := []struct {
		name string
		// end ends the victim session and returns a live token of the caller.
		end func(t *testing.T, victim string) (caller string)
	}{
		{"own, idle expired", func(t *testing.T, _ string) string {
			e.clock.Advance(30 * time.Minute)
			caller := e.login(t, "ender", pw)
			e.clock.Advance(30 * time.Minute)
			return caller
		}},
		{"own, absolute expired", func(t *testing.T, victim string) string {
			for i := 0; i < 2; i++ { // touched every 40 min: never idle
				e.clock.Advance(40 * time.Minute)
				if !e.valid(t, victim) {
					t.Fatal("rejected before its absolute expiry")
				}
			}
			caller := e.login(t, "ender", pw)
			e.clock.Advance(40 * time.Minute) // exactly 2 h after the victim's login
			return caller
		}},
		{"another user's, ended by a session-version bump", func(t *testing.T, _ string) string {
			if _, err := store.EndSessions(ctx, users.Actor{Username: "test"}, "ender"); err != nil {
				t.Fatal(err)
			}
			return e.login(t, masterName, e.masterPassword)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			victim := e.login(t, "ender", pw)
			caller := tc.end(t, victim)
			if !e.valid(t, caller) {
				t.Fatal("the caller's session is not live")
			}
			if !apitest.SessionItemExists(t, e.env.Client, e.env.Tables.Sessions, victim) {
				t.Fatal("item gone: the test would not prove the check")
			}
			handle := sessions.HandleOf(sessions.HashToken(victim))
			res := e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/sessions/" + handle, Headers: apitest.Bearer(caller)})
			if res.Status != 404 || res.Str("code") != "NOT_FOUND" || res.Str("error") != "Session not found" {
				t.Fatalf("ending an ended session: %d %s", res.Status, res.Raw)
			}
			if apitest.SessionItemExists(t, e.env.Client, e.env.Tables.Sessions, victim) {
				t.Fatal("the dead item was not deleted")
			}
			// A live one still ends with 200.
			live := e.login(t, "ender", pw)
			res = e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/sessions/" + sessions.HandleOf(sessions.HashToken(live)), Headers: apitest.Bearer(caller)})
			if res.Status != 200 || res.Body["success"] != true {
				t.Fatalf("ending a live session: %d %s", res.Status, res.Raw)
			}
		})
	}
}

// TestCountOfEndedSessions: count is the number of unexpired session items;
// a session ended by a version bump whose item survived the cleanup is
// counted until its token is next presented (docs/identity.md).
func TestCountOfEndedSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	admin := e.login(t, masterName, e.masterPassword)
	pw := apitest.RandomPassword(t)
	e.createUser(t, admin, "bumped", pw, "staff_tester")
	tok := e.login(t, "bumped", pw)
	count := func() float64 {
		t.Helper()
		res := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/sessions/count", Headers: apitest.Bearer(admin)})
		if res.Status != 200 || res.Body["approximate"] != false {
			t.Fatalf("count: %d %s", res.Status, res.Raw)
		}
		return res.Body["count"].(float64)
	}
	if n := count(); n != 2 {
		t.Fatalf("count = %v, want 2", n)
	}
	// The bump without the cleanup (as when the index lagged or the cleanup failed).
	if _, err := users.New(e.env.Client, e.env.Tables.Users, e.clock, nil).EndSessions(ctx, users.Actor{Username: "test"}, "bumped"); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Fatalf("count before the ended token is presented = %v, want 2 (documented)", n)
	}
	if e.valid(t, tok) {
		t.Fatal("ended session accepted")
	}
	if n := count(); n != 1 {
		t.Fatalf("count after the ended token was presented = %v, want 1", n)
	}
	// With the cleanup (DELETE /api/sessions?userId=), the count drops at once.
	e.login(t, "bumped", pw)
	if n := count(); n != 2 {
		t.Fatalf("count = %v, want 2", n)
	}
	if res := e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/sessions", Query: map[string]string{"userId": "bumped"}, Headers: apitest.Bearer(admin)}); res.Status != 200 {
		t.Fatalf("end all: %d %s", res.Status, res.Raw)
	}
	if n := count(); n != 1 {
		t.Fatalf("count after end all = %v, want 1", n)
	}
}
