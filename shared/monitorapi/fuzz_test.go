package monitorapi_test

import (
	"errors"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/monitorapi"
)

func FuzzParseQuery(f *testing.F) {
	for _, s := range [][2]string{
		{"", ""}, {"overview", ""}, {"history", "1"}, {"history", "168"}, {"history", "169"}, {"history", "2x"},
		{"history", "-1"}, {"history", "+5"}, {"history", "0x10"}, {"history", "1e2"}, {"alerts", "x"}, {"Metrics", ""},
		{"history", "99999999999999999999999"}, {"\x00", "\xff"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, endpoint, hours string) {
		q, err := monitorapi.ParseQuery(map[string]string{"endpoint": endpoint, "hours": hours})
		if err != nil {
			var he *httpapi.Error
			if !errors.As(err, &he) || he.Status != 400 || (he.Code != monitorapi.CodeInvalidEndpoint && he.Code != monitorapi.CodeInvalidHours) {
				t.Fatalf("error %v is not a 400 INVALID_ENDPOINT/INVALID_HOURS", err)
			}
			return
		}
		switch q.Endpoint {
		case "overview", "metrics", "history", "health", "alerts":
		default:
			t.Fatalf("accepted endpoint %q", q.Endpoint)
		}
		if q.Hours < 1 || q.Hours > monitorapi.MaxHours {
			t.Fatalf("accepted hours %d from %q", q.Hours, hours)
		}
	})
}

func FuzzParseSample(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"requests":{"total":1}}`, `{"requests":null}`, `{"performance":{"errorRate":100}}`,
		`{"requests":{"total":1.5}}`, `{"requests":{"total":-0}}`, `{"requests":{"total":1e309}}`, `{"x":1}`,
		`{"requests":{"total":5,"successful":4,"failed":2}}`, `{"requests":{"total":1}} {}`, `{"requests":{"rate":"1"}}`,
		`{"requests":{"total":1,"total":2}}`, `{"performance":{"availability":-1e-9}}`, "{\"requests\":{\"\xff\":1}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := monitorapi.ParseSample(body)
		if err != nil {
			var he *httpapi.Error
			if !errors.As(err, &he) || he.Status != 400 {
				t.Fatalf("error %v is not a 400", err)
			}
			return
		}
		if s.Requests == nil && s.Performance == nil {
			t.Fatal("accepted a sample with nothing in it")
		}
		nonNeg := func(name string, v *float64, max float64) {
			if v != nil && (*v < 0 || *v > max || *v != *v) {
				t.Fatalf("accepted %s = %v", name, *v)
			}
		}
		if r := s.Requests; r != nil {
			for name, v := range map[string]*int64{"total": r.Total, "successful": r.Successful, "failed": r.Failed} {
				if v != nil && *v < 0 {
					t.Fatalf("accepted negative %s", name)
				}
			}
			nonNeg("rate", r.Rate, 1e12)
		}
		if p := s.Performance; p != nil {
			nonNeg("averageResponseTime", p.AverageResponseTime, 1e12)
			nonNeg("errorRate", p.ErrorRate, 100)
			nonNeg("availability", p.Availability, 100)
			if p.SlowQueries != nil && *p.SlowQueries < 0 {
				t.Fatal("accepted negative slowQueries")
			}
		}
	})
}
