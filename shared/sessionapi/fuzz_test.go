package sessionapi_test

import (
	"net/http"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/sessionapi"
)

// FuzzParseListQuery: the query parser never panics, rejects only with 400
// VALIDATION_ERROR, and what it accepts is in range.
func FuzzParseListQuery(f *testing.F) {
	f.Add("20", "", "", "false", true)
	f.Add("0", "abc", "someone", "TRUE", true)
	f.Add("1e3", "eyJwayI6IngifQ", "a-b", "1", false)
	f.Fuzz(func(t *testing.T, limit, cursor, userID, all string, withLimit bool) {
		q := map[string]string{"cursor": cursor, "userId": userID, "all": all}
		if withLimit {
			q["limit"] = limit
		}
		if userID == "" {
			delete(q, "userId")
		}
		lq, herr := sessionapi.ParseListQuery(q)
		if herr != nil {
			if herr.Status != 400 || herr.Code != "VALIDATION_ERROR" {
				t.Fatalf("%d %s", herr.Status, herr.Code)
			}
			return
		}
		if lq.Limit < 1 || lq.Limit > sessionapi.MaxLimit || (lq.All && lq.UserID != "") {
			t.Fatalf("accepted %+v", lq)
		}
	})
}

// FuzzSessionsRequest drives the real session app on DynamoDB Local with a
// valid admin session: every input is answered 2xx or 4xx.
func FuzzSessionsRequest(f *testing.F) {
	e := newEnv(f, nil)
	token := e.login(f, masterName, e.masterPassword)
	f.Add(false, "", "", "", "", "")
	f.Add(false, "count", "5", "", "", "")
	f.Add(true, "0123456789abcdef", "", "", "", "")
	f.Add(false, "", "100", "eyJwayI6IngiLCJ1c2VySWQiOiJ5In0", "root_admin", "")
	f.Add(false, "", "1", "", "", "true")
	f.Add(true, "", "", "", "nobody", "")
	f.Add(false, "x/y", "", "", "", "maybe")
	f.Fuzz(func(t *testing.T, del bool, sub, limit, cursor, userID, all string) {
		method := http.MethodGet
		if del {
			method = http.MethodDelete
		}
		path := "/api/sessions"
		if sub != "" {
			path += "/" + sub
		}
		q := map[string]string{}
		for k, v := range map[string]string{"limit": limit, "cursor": cursor, "userId": userID, "all": all} {
			if v != "" {
				q[k] = v
			}
		}
		res := e.do(t, apitest.Request{Method: method, Path: path, Query: q, Headers: apitest.Bearer(token)})
		if res.Status < 200 || res.Status >= 500 || (res.Status >= 300 && res.Status < 400) {
			t.Fatalf("status %d for %s %s %v: %s", res.Status, method, path, q, res.Raw)
		}
		if res.Status == 401 { // an input ended the admin's own sessions: log in again
			token = e.login(t, masterName, e.masterPassword)
		}
	})
}
