// Package stack builds the four functions in one process the way their main
// packages do (platform.New, then <name>api.New) on one configuration, for
// the adversity suites (tests/faults, tests/durability) that put a proxy or a
// crash between them and DynamoDB Local.
package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/authapi"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/monitorapi"
	"github.com/zenithfresh/zenith-serverless/shared/passwords"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/sessionapi"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/trafficapi"
)

// Functions are the functions' short names (config.Load's function name).
var Functions = []string{"auth", "session", "traffic-manager", "system-monitor"}

// FunctionOf names the function that serves an API path.
func FunctionOf(path string) string {
	switch {
	case strings.HasPrefix(path, "/api/sessions"):
		return "session"
	case strings.HasPrefix(path, "/api/traffic-manager"):
		return "traffic-manager"
	case strings.HasPrefix(path, "/api/system-monitor"), strings.HasPrefix(path, "/api/health"):
		return "system-monitor"
	}
	return "auth"
}

// Stack is one instance of each function.
type Stack struct {
	Handlers map[string]apitest.Handler
	Deps     map[string]*platform.Deps
	Monitor  *monitorapi.Handler // the system-monitor entry point (HTTP and scheduled events)
	requests atomic.Int64
}

// Requests is how many requests Do has sent (each one the functions count).
func (s *Stack) Requests() int64 { return s.requests.Load() }

// New builds one instance of each function on cfg (cfg.Function is set per function).
func New(ctx context.Context, cfg config.Config, opts ...platform.Option) (*Stack, error) {
	s := &Stack{Handlers: map[string]apitest.Handler{}, Deps: map[string]*platform.Deps{}}
	for _, fn := range Functions {
		c := cfg
		c.Function = fn
		d, err := platform.New(ctx, c, opts...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fn, err)
		}
		s.Deps[fn] = d
		switch fn {
		case "auth":
			app, err := authapi.New(ctx, d)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", fn, err)
			}
			s.Handlers[fn] = app.Handle
		case "session":
			app, err := sessionapi.New(ctx, d)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", fn, err)
			}
			s.Handlers[fn] = app.Handle
		case "traffic-manager":
			app, err := trafficapi.New(ctx, d)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", fn, err)
			}
			s.Handlers[fn] = app.Handle
		case "system-monitor":
			h, err := monitorapi.NewHandler(ctx, d)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", fn, err)
			}
			s.Monitor = h
			s.Handlers[fn] = h.App().Handle
		}
	}
	return s, nil
}

// CheapPasswords makes the users created and passwords set from now on
// hash with minimal argon2id parameters: the suites log in and create users
// by the hundred to prepare requests, and the cost of a hash decides nothing
// they test. (Logins verify with the parameters stored in each hash.)
func (s *Stack) CheapPasswords() *Stack {
	for _, d := range s.Deps {
		d.Users.SetPasswordParams(passwords.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	}
	return s
}

// Do sends r to the function that owns its path, with the headers HTTP API
// passes on (r's win), and decodes the answer.
func (s *Stack) Do(t testing.TB, r apitest.Request) apitest.Response {
	t.Helper()
	headers := map[string]string{"content-type": "application/json", "user-agent": "adversity-test"}
	for k, v := range r.Headers {
		headers[k] = v
	}
	r.Headers = headers
	s.requests.Add(1)
	return apitest.Do(t, s.Handlers[FunctionOf(r.Path)], r.Event())
}

// setupAttempts bounds how often a setup call is tried while it answers 503:
// a busy DynamoDB Local can exceed a small DB_TIMEOUT, and the instance's
// store breaker then fails its calls fast for a second.
const setupAttempts = 15

// Setup sends a request that prepares a test (a login, a user) and expects
// want; a 503 is tried again after the breaker's cooldown.
func (s *Stack) Setup(t testing.TB, r apitest.Request, want int) apitest.Response {
	t.Helper()
	var res apitest.Response
	for attempt := 1; attempt <= setupAttempts; attempt++ {
		res = s.Do(t, r)
		if res.Status != http.StatusServiceUnavailable {
			break
		}
		time.Sleep(store.BreakerCooldown)
	}
	if res.Status != want {
		t.Fatalf("%s %s: %d %s (want %d)", r.Method, r.Path, res.Status, res.Raw, want)
	}
	return res
}

// Login logs username in and returns the token, failing t otherwise.
func (s *Stack) Login(t testing.TB, username, password string) string {
	t.Helper()
	res := s.Setup(t, apitest.Request{Method: http.MethodPost, Path: "/api/auth",
		Body: apitest.JSON(t, map[string]any{"action": "login", "username": username, "password": password})}, http.StatusOK)
	tok, _ := res.Get("session.id").(string)
	if tok == "" {
		t.Fatalf("login gave no token: %s", res.Raw)
	}
	return tok
}

// CreateUser creates a user through POST /api/auth/users with the admin token.
func (s *Stack) CreateUser(t testing.TB, admin, username, password, role string) {
	t.Helper()
	s.Setup(t, apitest.Request{Method: http.MethodPost, Path: "/api/auth/users", Headers: apitest.Bearer(admin),
		Body: apitest.JSON(t, map[string]any{"username": username, "password": password, "role": role, "name": username})}, http.StatusCreated)
}

// Handle returns the public handle of the session that tok authenticates
// (GET /api/sessions, the entry marked current, page by page).
func (s *Stack) Handle(t testing.TB, tok string) string {
	t.Helper()
	cursor := ""
	for page := 0; page < 1000; page++ {
		r := apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(tok)}
		if cursor != "" {
			r.Query = map[string]string{"cursor": cursor}
		}
		res := s.Setup(t, r, http.StatusOK)
		var body struct {
			Sessions []struct {
				ID      string `json:"id"`
				Current bool   `json:"current"`
			} `json:"sessions"`
			Cursor string `json:"cursor"`
		}
		if err := json.Unmarshal([]byte(res.Raw), &body); err != nil {
			t.Fatal(err)
		}
		for _, x := range body.Sessions {
			if x.Current {
				return x.ID
			}
		}
		if cursor = body.Cursor; cursor == "" {
			break
		}
	}
	t.Fatalf("no current session among the caller's sessions")
	return ""
}
