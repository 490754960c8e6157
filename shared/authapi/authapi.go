// Package authapi holds the routes of the auth function. SCAFFOLD: handlers are
// filled in by the issue that owns this function.
package authapi

import (
	"context"
	"net/http"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
)

// New builds the auth function's app on the shared dependencies.
func New(ctx context.Context, d *platform.Deps) (*httpapi.App, error) {
	app := &httpapi.App{
		Routes: []httpapi.Route{
			{Method: http.MethodGet, Path: "/api/auth", Handler: notImplemented},
			{Method: http.MethodPost, Path: "/api/auth", Handler: notImplemented},
			{Method: http.MethodGet, Path: "/api/auth/users", Permission: "userManagement", Handler: notImplemented},
			{Method: http.MethodPost, Path: "/api/auth/users", Permission: "userManagement", Handler: notImplemented},
			{Method: http.MethodPatch, Path: "/api/auth/users/{username}", Permission: "userManagement", Handler: notImplemented},
			{Method: http.MethodDelete, Path: "/api/auth/users/{username}", Permission: "userManagement", Handler: notImplemented},
		},
	}
	return d.Install(app), nil
}

func notImplemented(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	return nil, httpapi.NewError(http.StatusNotImplemented, "NOT_IMPLEMENTED", "Not implemented yet")
}
