package authapi_test

import (
	"encoding/json"
	"net/http"
	"os"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/authapi"
)

func seedBodies(f *testing.F) []string {
	f.Helper()
	raw, err := os.ReadFile("testdata/auth_bodies.json")
	if err != nil {
		f.Fatal(err)
	}
	var bodies []string
	if err := json.Unmarshal(raw, &bodies); err != nil {
		f.Fatal(err)
	}
	return bodies
}

// FuzzParseAuthRequest: the body parser never panics and rejects only with
// a 4xx of the contract's codes.
func FuzzParseAuthRequest(f *testing.F) {
	for _, b := range seedBodies(f) {
		f.Add([]byte(b))
	}
	codes := map[string]bool{"EMPTY_BODY": true, "JSON_PARSE_ERROR": true, "INVALID_BODY_TYPE": true, "VALIDATION_ERROR": true, "MISSING_ACTION": true, "INVALID_ACTION": true}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, herr := authapi.ParseAuthRequest(body)
		if herr != nil {
			if herr.Status != 400 || !codes[herr.Code] {
				t.Fatalf("parser answered %d %s", herr.Status, herr.Code)
			}
			return
		}
		switch req.Action {
		case authapi.ActionLogin, authapi.ActionLogout, authapi.ActionValidate:
		default:
			t.Fatalf("accepted action %q", req.Action)
		}
	})
}

// FuzzAuthPost drives the real auth app on DynamoDB Local: every body gets
// a 2xx or 4xx JSON answer, never a 5xx.
func FuzzAuthPost(f *testing.F) {
	e := newEnv(f, nil)
	admin := e.login(f, masterName, e.masterPassword)
	for _, b := range seedBodies(f) {
		f.Add(b, "", false)
	}
	f.Add(`{"action":"validate"}`, admin, false)
	f.Add(`{"action":"logout","sessionId":"`+admin+`"}`, "", false)
	f.Add(`{"action":"validate","sessionId":"`+admin+`"}`, "", true)
	f.Fuzz(func(t *testing.T, body, token string, cookie bool) {
		req := apitest.Request{Method: http.MethodPost, Path: "/api/auth", Body: body}
		if token != "" {
			if cookie {
				req.Cookies = []string{"zenith_session=" + token}
				req.Headers = map[string]string{"origin": allowedOrigin}
			} else {
				req.Headers = map[string]string{"authorization": "Bearer " + token}
			}
		}
		res := e.do(t, req)
		if res.Status < 200 || res.Status >= 500 || (res.Status >= 300 && res.Status < 400) {
			t.Fatalf("status %d for %q: %s", res.Status, body, res.Raw)
		}
		if res.Str("requestId") == "" {
			t.Fatalf("no requestId: %s", res.Raw)
		}
	})
}

// FuzzAuthGet drives GET /api/auth and the user routes' query parsing.
func FuzzAuthGet(f *testing.F) {
	e := newEnv(f, nil)
	admin := e.login(f, masterName, e.masterPassword)
	f.Add("/api/auth", "", "", admin)
	f.Add("/api/auth", "session_1_x", "", "")
	f.Add("/api/auth/users", "", "5", admin)
	f.Add("/api/auth/users", "eyJwayI6InVzZXIjeCJ9", "100", admin)
	f.Add("/api/auth/users/", "", "-1", admin)
	f.Fuzz(func(t *testing.T, path, query, limit, token string) {
		if len(path) == 0 || path[0] != '/' {
			path = "/" + path
		}
		req := apitest.Request{Method: http.MethodGet, Path: path, Query: map[string]string{"sessionId": query, "cursor": query, "limit": limit}}
		if token != "" {
			req.Headers = apitest.Bearer(token)
		}
		res := e.do(t, req)
		if res.Status < 200 || res.Status >= 500 || (res.Status >= 300 && res.Status < 400) {
			t.Fatalf("status %d for %q %q: %s", res.Status, path, query, res.Raw)
		}
	})
}
