package monitorapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/apitest/outagetest"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/monitorapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
)

// TestColdStartDuringOutage (finding 7): the system monitor starts with
// DynamoDB unreachable and answers 503 SERVICE_UNAVAILABLE with
// Retry-After in each route's envelope.
func TestColdStartDuringOutage(t *testing.T) {
	t.Parallel()
	s := outagetest.Start(t, "system-monitor", minuteM, nil, func(ctx context.Context, d *platform.Deps) (*httpapi.App, error) {
		return monitorapi.New(ctx, d)
	})
	tok, err := sessions.NewToken("some_user")
	if err != nil {
		t.Fatal(err)
	}
	reqs := []apitest.Request{
		{Method: http.MethodGet, Path: "/api/system-monitor", Headers: apitest.Bearer(tok), Query: map[string]string{"endpoint": "metrics"}},
		{Method: http.MethodPost, Path: "/api/system-monitor", Headers: apitest.Bearer(tok), Body: `{"requests":{"total":1}}`},
		{Method: http.MethodPost, Path: "/api/system-monitor/alerts/abc/acknowledge", Headers: apitest.Bearer(tok)},
	}
	for i, res := range s.ExpectUnavailable(t, reqs...) {
		if reqs[i].Method == http.MethodGet && (res.Body["timestamp"] == nil || res.Body["success"] != nil) {
			t.Errorf("GET answered outside the monitor envelope: %s", res.Raw)
		}
	}
}
