// Package sessionapi holds the routes of the session function. SCAFFOLD: handlers are
// filled in by the issue that owns this function.
package sessionapi

import (
	"context"
	"net/http"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
)

// New builds the session function's app on the shared dependencies.
func New(ctx context.Context, d *platform.Deps) (*httpapi.App, error) {
	app := &httpapi.App{
		Routes: []httpapi.Route{
			{Method: http.MethodGet, Path: "/api/sessions", Permission: httpapi.Authenticated, Handler: notImplemented},
			{Method: http.MethodDelete, Path: "/api/sessions", Permission: httpapi.Authenticated, Handler: notImplemented},
			{Method: http.MethodGet, Path: "/api/sessions/count", Permission: "systemMonitoring", Handler: notImplemented},
			{Method: http.MethodDelete, Path: "/api/sessions/{id}", Permission: httpapi.Authenticated, Handler: notImplemented},
		},
	}
	return d.Install(app), nil
}

func notImplemented(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	return nil, httpapi.NewError(http.StatusNotImplemented, "NOT_IMPLEMENTED", "Not implemented yet")
}
