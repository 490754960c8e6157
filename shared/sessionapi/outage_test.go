package sessionapi_test

import (
	"net/http"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/apitest/outagetest"
	"github.com/zenithfresh/zenith-serverless/shared/sessionapi"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
)

// TestColdStartDuringOutage (finding 7): the session function starts with
// DynamoDB unreachable and answers the contract's 503 SERVICE_UNAVAILABLE
// with Retry-After on the routes that need the store.
func TestColdStartDuringOutage(t *testing.T) {
	t.Parallel()
	s := outagetest.Start(t, "session", apitest.Epoch, nil, sessionapi.New)
	tok, err := sessions.NewToken("some_user")
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range s.ExpectUnavailable(t,
		apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(tok)},
		apitest.Request{Method: http.MethodGet, Path: "/api/sessions/count", Headers: apitest.Bearer(tok)},
		apitest.Request{Method: http.MethodDelete, Path: "/api/sessions/0123456789abcdef", Headers: apitest.Bearer(tok)},
		apitest.Request{Method: http.MethodDelete, Path: "/api/sessions", Headers: apitest.Bearer(tok)},
	) {
		if res.Body["success"] != false {
			t.Errorf("answered outside the sessions envelope: %s", res.Raw)
		}
	}
	if res := s.Do(t, apitest.Request{Method: http.MethodGet, Path: "/api/sessions"}); res.Status != 401 {
		t.Errorf("no token during the outage: %d %s", res.Status, res.Raw)
	}
}
