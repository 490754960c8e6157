// Package authapi holds the routes of the auth function (API.md "/api/auth"):
// login, logout and validate, the deprecated GET validate, and the staff
// user routes under /api/auth/users. Its start (New) seeds the default roles
// and creates the master user when absent.
package authapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/identity"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/secrets"
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

// Path is the function's base path.
const Path = "/api/auth"

type service struct {
	identity *identity.Service
	users    *users.Store
	sessions *sessions.Manager
}

// New builds the auth function's app on the shared dependencies. It needs
// MASTER_USERNAME and MASTER_PASSWORD (or MASTER_PASSWORD_SECRET), seeds the
// default roles and creates the master user when absent; any problem fails
// the start with an error naming the variable.
func New(ctx context.Context, d *platform.Deps) (*httpapi.App, error) {
	if err := d.Master.Validate(); err != nil {
		return nil, fmt.Errorf("auth start: %w", err)
	}
	var reader users.SecretReader
	if d.Master.Secret != "" {
		reader = secrets.NewAWS(d.AWS)
	}
	if err := d.Users.Bootstrap(ctx, d.Master, reader); err != nil {
		return nil, fmt.Errorf("auth start: %w", err)
	}
	s := &service{identity: d.Identity, users: d.Users, sessions: d.Sessions}
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
