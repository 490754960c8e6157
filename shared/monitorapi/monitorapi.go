// Package monitorapi holds the routes of the system-monitor function. SCAFFOLD: handlers are
// filled in by the issue that owns this function.
package monitorapi

import (
	"context"
	"net/http"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
)

// New builds the system-monitor function's app on the shared dependencies.
func New(ctx context.Context, d *platform.Deps) (*httpapi.App, error) {
	app := &httpapi.App{
		Routes: []httpapi.Route{
			{Method: http.MethodGet, Path: "/api/system-monitor", Permission: "systemMonitoring", Handler: notImplemented},
			{Method: http.MethodPost, Path: "/api/system-monitor", Permission: "systemMonitoring", Handler: notImplemented},
			{Method: http.MethodPost, Path: "/api/system-monitor/alerts/{id}/acknowledge", Permission: "systemMonitoring", Handler: notImplemented},
		},
		EnvelopeFor: func(m string) httpapi.Envelope {
			if m == http.MethodGet {
				return httpapi.EnvelopeMonitor
			}
			return httpapi.EnvelopeStandard
		},
	}
	return d.Install(app), nil
}

func notImplemented(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	return nil, httpapi.NewError(http.StatusNotImplemented, "NOT_IMPLEMENTED", "Not implemented yet")
}
