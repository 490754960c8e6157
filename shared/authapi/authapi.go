// Package authapi holds the routes of the auth function (API.md "/api/auth"):
// login, logout and validate, the deprecated GET validate, and the staff
// user routes under /api/auth/users. Its start (New) checks the master
// user's configuration without touching the store; seeding the default roles
// and creating the master user when absent (the bootstrap) runs before the
// first request that needs them, and again on the next one until it has
// succeeded, so an instance started during a store outage answers 503
// instead of failing its start.
package authapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/identity"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/secrets"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// Codes of the auth routes besides httpapi's common ones.
const (
	CodeMissingAction      = "MISSING_ACTION"
	CodeInvalidAction      = "INVALID_ACTION"
	CodeInvalidCredentials = "INVALID_CREDENTIALS"
	CodeInvalidSession     = "INVALID_SESSION"
	CodeTooManyAttempts    = "TOO_MANY_ATTEMPTS"
	CodeUserExists         = "USER_EXISTS"
	CodeLastAdmin          = "LAST_ADMIN"
	CodeProtectedUser      = "PROTECTED_USER"
	CodeConflict           = "CONFLICT"
	CodeSuccess            = "SUCCESS"
	CodeSessionNotFound    = "SESSION_NOT_FOUND"
)

// Path is the function's base path.
const Path = "/api/auth"

// DeviceCookie is the signed device cookie a login sets (identity's device
// cookies); it is sent back to /api/auth only.
const DeviceCookie = "zenith_device"

// deviceCookieFor is the Set-Cookie of a device cookie.
func deviceCookieFor(c *identity.DeviceCookie) string {
	return fmt.Sprintf("%s=%s; HttpOnly; Secure; SameSite=Strict; Path=%s; Max-Age=%d", DeviceCookie, c.Value, Path, int64(c.MaxAge/time.Second))
}

type service struct {
	identity *identity.Service
	users    *users.Store
	sessions *sessions.Manager
	boot     *bootstrap
}

// bootstrap runs the master-user bootstrap once per instance, lazily: the
// first request that needs roles or the master user runs it, a failed run is
// retried by the next such request, and concurrent requests wait for the one
// running. Across instances the user is created once (a conditional put).
type bootstrap struct {
	users  *users.Store
	master users.Master
	reader users.SecretReader
	logger *slog.Logger

	mu   sync.Mutex
	done bool
}

// ready returns once the bootstrap has succeeded on this instance; its
// error fails the request (503 when the store is unreachable).
// isReady reports, without waiting, whether the bootstrap is done.
func (b *bootstrap) isReady() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done
}

func (b *bootstrap) ready(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return nil
	}
	if err := b.users.Bootstrap(ctx, b.master, b.reader); err != nil {
		if store.IsUnavailable(err) {
			return fmt.Errorf("auth bootstrap: %w", err)
		}
		// A secret that cannot be read or holds an invalid password: the
		// error names the variable, never the value.
		b.logger.ErrorContext(ctx, "auth bootstrap failed", "err", err)
		return httpapi.ServiceUnavailable(bootstrapRetry)
	}
	b.done = true
	return nil
}

// bootstrapRetry is the Retry-After of a request refused while the
// bootstrap cannot run.
const bootstrapRetry = 5 * time.Second

// New builds the auth function's app on the shared dependencies. It needs
// MASTER_USERNAME and MASTER_PASSWORD (or MASTER_PASSWORD_SECRET); an
// invalid configuration fails the start with an error naming the variable.
// It makes no store call: the bootstrap (default roles, master user) runs
// before the first request that needs it.
func New(ctx context.Context, d *platform.Deps) (*httpapi.App, error) {
	if err := d.Master.Validate(); err != nil {
		return nil, fmt.Errorf("auth start: %w", err)
	}
	var reader users.SecretReader
	if d.Master.Secret != "" {
		reader = secrets.NewAWS(d.AWS)
	}
	s := &service{
		identity: d.Identity, users: d.Users, sessions: d.Sessions,
		boot: &bootstrap{users: d.Users, master: d.Master, reader: reader, logger: d.Logger},
	}
	app := &httpapi.App{
		Routes: []httpapi.Route{
			{Method: http.MethodGet, Path: Path, Handler: s.getValidate},
			// A login's lockout and user read goes alongside its limiter decision.
			{Method: http.MethodPost, Path: Path, Handler: s.post, Prefetch: s.prefetchLogin},
			{Method: http.MethodGet, Path: Path + "/users", Permission: users.PermUserManagement, Handler: s.booted(s.listUsers)},
			{Method: http.MethodPost, Path: Path + "/users", Permission: users.PermUserManagement, Handler: s.booted(s.createUser)},
			{Method: http.MethodPatch, Path: Path + "/users/{username}", Permission: users.PermUserManagement, Handler: s.booted(s.updateUser)},
			{Method: http.MethodDelete, Path: Path + "/users/{username}", Permission: users.PermUserManagement, Handler: s.booted(s.deleteUser)},
		},
		// ?sessionId= is accepted on GET /api/auth only, for old clients (deprecated).
		QueryToken: func(r *httpapi.Request) bool {
			return r.Method == http.MethodGet && strings.TrimRight(r.Path, "/") == Path
		},
	}
	return d.Install(app), nil
}

// booted runs the bootstrap before h.
func (s *service) booted(h httpapi.HandlerFunc) httpapi.HandlerFunc {
	return func(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
		if err := s.boot.ready(ctx); err != nil {
			return nil, err
		}
		return h(ctx, r)
	}
}
