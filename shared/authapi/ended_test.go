package authapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// TestLogoutOfEndedSession: logging out of a session that has already ended
// (idle or absolute expiry, or a session-version bump) while its item still
// exists answers API.md's unknown-session body, whichever way the token
// comes, and deletes the dead item.
func TestLogoutOfEndedSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"SESSION_TTL": "3600", "SESSION_MAX_LIFETIME": "7200", "SESSION_TOUCH_INTERVAL": "60"})
	ctx := context.Background()
	store := users.New(e.env.Client, e.env.Tables.Users, e.clock, discardLogger())
	ends := []struct {
		name string
		end  func(t *testing.T, tok string)
	}{
		{"idle expired", func(t *testing.T, _ string) { e.clock.Advance(time.Hour) }},
		{"absolute expired", func(t *testing.T, tok string) {
			for i := 0; i < 2; i++ { // touched every 40 min: never idle
				e.clock.Advance(40 * time.Minute)
				if s := e.validateStatus(t, tok); s != 200 {
					t.Fatalf("rejected before its absolute expiry: %d", s)
				}
			}
			e.clock.Advance(40 * time.Minute) // exactly 2 h after login
		}},
		{"ended by a session-version bump", func(t *testing.T, _ string) {
			if _, err := store.EndSessions(ctx, users.Actor{Username: "test"}, masterName); err != nil {
				t.Fatal(err)
			}
		}},
	}
	sources := []struct {
		name string
		req  func(tok string) apitest.Request
	}{
		{"body", func(tok string) apitest.Request {
			return apitest.Request{Body: apitest.JSON(t, map[string]any{"action": "logout", "sessionId": tok})}
		}},
		{"bearer", func(tok string) apitest.Request {
			return apitest.Request{Body: `{"action":"logout"}`, Headers: apitest.Bearer(tok)}
		}},
		{"cookie", func(tok string) apitest.Request {
			return apitest.Request{Body: `{"action":"logout"}`, Cookies: []string{"zenith_session=" + tok}, Headers: map[string]string{"origin": allowedOrigin}}
		}},
	}
	for _, end := range ends {
		for _, src := range sources {
			t.Run(end.name+"/"+src.name, func(t *testing.T) {
				tok := e.login(t, masterName, e.masterPassword)
				end.end(t, tok)
				if !apitest.SessionItemExists(t, e.env.Client, e.env.Tables.Sessions, tok) {
					t.Fatal("item gone: the test would not prove the check")
				}
				req := src.req(tok)
				req.Method, req.Path = http.MethodPost, "/api/auth"
				res := e.do(t, req)
				if res.Status != 200 || res.Body["success"] != false || res.Str("message") != "Session not found" || res.Str("code") != "SESSION_NOT_FOUND" {
					t.Fatalf("logout of an ended session: %d %s", res.Status, res.Raw)
				}
				if apitest.SessionItemExists(t, e.env.Client, e.env.Tables.Sessions, tok) {
					t.Fatal("the dead item was not deleted")
				}
			})
		}
	}
	t.Run("live", func(t *testing.T) {
		for _, src := range sources {
			tok := e.login(t, masterName, e.masterPassword)
			req := src.req(tok)
			req.Method, req.Path = http.MethodPost, "/api/auth"
			if res := e.do(t, req); res.Status != 200 || res.Body["success"] != true || res.Str("code") != "SUCCESS" {
				t.Fatalf("%s logout of a live session: %d %s", src.name, res.Status, res.Raw)
			}
		}
	})
}

// TestDeadTokenCostsNothingWhenDenied: a well-formed dead token does not
// defeat the limiter's deny cache. The session is resolved before the
// limiter (its key is the user id when the session is valid); the negative
// cache makes that resolution free after the first time, so repeated
// denials cost no DynamoDB call at all.
func TestDeadTokenCostsNothingWhenDenied(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"RATE_LIMIT_API_RPM": "1", "RATE_LIMIT_API_BURST": "1", "METRICS_REALTIME": "off"})
	tok, err := sessions.NewToken(strings.ToLower(masterName)) // well formed, for a real user, never issued
	if err != nil {
		t.Fatal(err)
	}
	req := apitest.Request{Method: http.MethodGet, Path: "/api/auth", Headers: apitest.Bearer(tok)}
	e.calls.Reset()                             // the start's own calls
	for i, want := range []int{401, 401, 429} { // capacity 2, then the first deny
		if res := e.do(t, req); res.Status != want {
			t.Fatalf("request %d: %d %s, want %d", i+1, res.Status, res.Raw, want)
		}
	}
	if n := e.calls.Count("BatchGetItem"); n != 1 {
		t.Fatalf("three requests with one dead token read it %d times, want 1", n)
	}
	e.calls.Reset()
	for i := 0; i < 5; i++ {
		if res := e.do(t, req); res.Status != 429 {
			t.Fatalf("repeat %d: %d", i, res.Status)
		}
	}
	if got := e.calls.Snapshot(); len(got) != 0 {
		t.Fatalf("repeated denials with a dead token cost %v, want no DynamoDB call", got)
	}
}
