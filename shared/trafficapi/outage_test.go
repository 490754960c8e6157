package trafficapi_test

import (
	"net/http"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/apitest/outagetest"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/trafficapi"
)

// TestColdStartDuringOutage (finding 7): the traffic-manager starts with
// DynamoDB unreachable; what needs the store answers 503
// SERVICE_UNAVAILABLE with Retry-After (the front door too when
// RATE_LIMIT_FAIL_MODE is closed), and the status stays answerable.
func TestColdStartDuringOutage(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"open", "closed"} {
		t.Run(mode, func(t *testing.T) {
			s := outagetest.Start(t, "traffic-manager", base, map[string]string{"RATE_LIMIT_FAIL_MODE": mode}, trafficapi.New)
			tok, err := sessions.NewToken("some_user")
			if err != nil {
				t.Fatal(err)
			}
			unavailable := []apitest.Request{
				{Method: http.MethodPost, Path: "/api/traffic-manager", Headers: apitest.Bearer(tok), Body: `{"simulateLoad":true}`},
				{Method: http.MethodGet, Path: "/api/traffic-manager", Headers: apitest.Bearer(tok)},
			}
			if mode == "closed" {
				unavailable = append(unavailable, apitest.Request{Method: http.MethodGet, Path: "/api/traffic-manager"})
			}
			s.ExpectUnavailable(t, unavailable...)
			if res := s.Do(t, apitest.Request{Method: http.MethodGet, Path: "/api/traffic-manager", Query: map[string]string{"status": "true"}}); res.Status != 200 || res.Body["status"] != "degraded" {
				t.Errorf("status during the outage: %d %s", res.Status, res.Raw)
			}
		})
	}
}
