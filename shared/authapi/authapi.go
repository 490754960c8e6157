// Package authapi holds the routes of the auth function (API.md "/api/auth"):
// login, logout and validate, the deprecated GET validate, and the staff
// user routes under /api/auth/users. Its start (New) seeds the default roles
// and creates the master user when absent.
package authapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/lockout"
	"github.com/zenithfresh/zenith-serverless/shared/passwords"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
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
	CodeConflict           = "CONFLICT"
	CodeSuccess            = "SUCCESS"
	CodeSessionNotFound    = "SESSION_NOT_FOUND"
)

// EventFailedLogin is the security event counted for the alert rules.
const EventFailedLogin = "failed_login"

// Path is the function's base path.
const Path = "/api/auth"

type service struct {
	d        *platform.Deps
	users    *users.Store
	sessions *sessions.Manager
	guard    *lockout.Guard
	dummy    string // a hash no password matches, for unknown users
}

// New builds the auth function's app on the shared dependencies. It needs
// MASTER_USERNAME and MASTER_PASSWORD (or MASTER_PASSWORD_SECRET), seeds the
// default roles and creates the master user when absent; any problem fails
// the start with an error naming the variable.
func New(ctx context.Context, d *platform.Deps) (*httpapi.App, error) {
	master, err := users.MasterFromConfig(d.Config)
	if err != nil {
		return nil, fmt.Errorf("auth start: %w", err)
	}
	s := newService(d)
	var secrets users.SecretReader
	if master.Secret != "" {
		secrets = users.NewAWSSecrets(d.AWS)
	}
	if err := s.users.Bootstrap(ctx, master, secrets); err != nil {
		return nil, fmt.Errorf("auth start: %w", err)
	}
	app := &httpapi.App{
		Routes: []httpapi.Route{
			{Method: http.MethodGet, Path: Path, Handler: s.getValidate},
			{Method: http.MethodPost, Path: Path, Handler: s.post},
			{Method: http.MethodGet, Path: Path + "/users", Permission: users.PermUserManagement, Handler: s.listUsers},
			{Method: http.MethodPost, Path: Path + "/users", Permission: users.PermUserManagement, Handler: s.createUser},
			{Method: http.MethodPatch, Path: Path + "/users/{username}", Permission: users.PermUserManagement, Handler: s.updateUser},
			{Method: http.MethodDelete, Path: Path + "/users/{username}", Permission: users.PermUserManagement, Handler: s.deleteUser},
		},
		// ?sessionId= is accepted on GET /api/auth only, for old clients (deprecated).
		QueryToken: func(r *httpapi.Request) bool {
			return r.Method == http.MethodGet && strings.TrimRight(r.Path, "/") == Path
		},
	}
	return d.Install(app), nil
}

func newService(d *platform.Deps) *service {
	mgr, ok := d.Sessions.(*sessions.Manager)
	if !ok || mgr == nil {
		mgr = sessions.New(d.DB, d.Config, d.Clock, d.Logger)
	}
	us := users.New(d.DB, d.Config.Tables.Users, d.Clock, d.Logger)
	return &service{
		d:        d,
		users:    us,
		sessions: mgr,
		guard:    lockout.New(d.DB, d.Config.Tables.LoginAttempts, d.Clock, lockout.DefaultPolicy),
		dummy:    passwords.Dummy(us.PasswordParams()),
	}
}

// SessionCookie renders the login cookie (Max-Age = the absolute lifetime).
func SessionCookie(token string, maxAgeSeconds int64) string {
	return httpapi.SessionCookie + "=" + token + "; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=" + strconv.FormatInt(maxAgeSeconds, 10)
}

// ClearCookie renders the logout cookie.
func ClearCookie() string {
	return httpapi.SessionCookie + "=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0"
}
