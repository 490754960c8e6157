package trafficapi_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/ratelimit"
	"github.com/zenithfresh/zenith-serverless/shared/trafficapi"
)

// FuzzParseOverride: any body is either a valid override within the
// contract's ranges or a 400 with one of the contract's codes; never a panic.
func FuzzParseOverride(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"simulateLoad":true}`, `{"simulateLoad":true,"connections":0,"load":0}`,
		`{"connections":10000,"load":1}`, `{"connections":1e4}`, `{"connections":-0}`, `{"load":1e-320}`,
		`{"connections":1.5}`, `{"load":"0.5"}`, `{"simulateLoad":null}`, `{"x":1}`, `[]`, `"s"`, `{`, `{"load":1}{}`,
		`{"simulateLoad":true,"simulateLoad":false}`, `{"connections":99999999999999999999999}`, "{\"load\":0.5}\x00",
	} {
		f.Add([]byte(s))
	}
	codes := map[string]bool{httpapi.CodeEmptyBody: true, httpapi.CodeJSONParse: true, httpapi.CodeInvalidBodyType: true, httpapi.CodeValidation: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := trafficapi.ParseOverride(body)
		if err != nil {
			var e *httpapi.Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest || !codes[e.Code] {
				t.Fatalf("body %q: error %v is not a contract 400", body, err)
			}
			return
		}
		if in.Connections < 0 || in.Connections > 10000 || !(in.Load >= 0 && in.Load <= 1) {
			t.Fatalf("body %q: out-of-range override %+v accepted", body, in)
		}
	})
}

// FuzzStatusQuery: ?status= parses to true, false or INVALID_PARAMETER, and
// the limiter policy agrees with it (free exactly when status is true).
func FuzzStatusQuery(f *testing.F) {
	for _, s := range []string{"true", "TRUE", "false", "", "1", "tRUE", " true", "truE\x00", "ｔｒｕｅ", "\xff"} {
		f.Add(s, true, "GET", "/api/traffic-manager")
	}
	f.Add("", false, "GET", "/api/traffic-manager/")
	f.Add("true", true, "POST", "/api/traffic-manager")
	f.Add("true", true, "GET", "/api/traffic-manager/x")
	f.Fuzz(func(t *testing.T, v string, present bool, method, path string) {
		q := map[string]string{}
		if present {
			q["status"] = v
		}
		status, err := trafficapi.ParseStatus(q)
		if err != nil {
			var e *httpapi.Error
			if !errors.As(err, &e) || e.Status != 400 || e.Code != trafficapi.CodeInvalidParameter {
				t.Fatalf("status %q: %v", v, err)
			}
		}
		policy := trafficapi.PolicyFor(&httpapi.Request{Method: method, Path: path, Query: q})
		frontPath := method == http.MethodGet && strings.Trim(path, "/") == "api/traffic-manager"
		switch {
		case !frontPath && policy != ratelimit.PolicyAPI:
			t.Fatalf("%s %s: policy %q, want api", method, path, policy)
		case frontPath && (policy == httpapi.PolicyNone) != (err == nil && status):
			t.Fatalf("status %q: policy %q but parsed %v, %v", v, policy, status, err)
		case frontPath && policy != httpapi.PolicyNone && policy != ratelimit.PolicyFrontdoor:
			t.Fatalf("front door policy %q", policy)
		}
	})
}
