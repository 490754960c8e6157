// Package trafficapi holds the routes of the traffic-manager function. SCAFFOLD: handlers are
// filled in by the issue that owns this function.
package trafficapi

import (
	"context"
	"net/http"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
)

// New builds the traffic-manager function's app on the shared dependencies.
func New(ctx context.Context, d *platform.Deps) (*httpapi.App, error) {
	app := &httpapi.App{
		Routes: []httpapi.Route{
			{Method: http.MethodGet, Path: "/api/traffic-manager", Handler: notImplemented},
			{Method: http.MethodPost, Path: "/api/traffic-manager", Permission: "trafficControl", Handler: notImplemented},
		},
		EnvelopeFor: func(m string) httpapi.Envelope {
			if m == http.MethodGet {
				return httpapi.EnvelopeTraffic
			}
			return httpapi.EnvelopeStandard
		},
	}
	return d.Install(app), nil
}

func notImplemented(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	return nil, httpapi.NewError(http.StatusNotImplemented, "NOT_IMPLEMENTED", "Not implemented yet")
}
