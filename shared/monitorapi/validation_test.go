package monitorapi_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestGetValidation(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		name  string
		query map[string]string
		code  string
	}{
		{"unknown endpoint", map[string]string{"endpoint": "status"}, "INVALID_ENDPOINT"},
		{"endpoint is case-sensitive", map[string]string{"endpoint": "Metrics"}, "INVALID_ENDPOINT"},
		{"repeated endpoint (joined by API Gateway)", map[string]string{"endpoint": "metrics,history"}, "INVALID_ENDPOINT"},
		{"hours 0", map[string]string{"endpoint": "history", "hours": "0"}, "INVALID_HOURS"},
		{"hours 169", map[string]string{"endpoint": "history", "hours": "169"}, "INVALID_HOURS"},
		{"hours 2x (the original's parseInt took it)", map[string]string{"endpoint": "history", "hours": "2x"}, "INVALID_HOURS"},
		{"hours negative", map[string]string{"endpoint": "history", "hours": "-1"}, "INVALID_HOURS"},
		{"hours signed", map[string]string{"endpoint": "history", "hours": "+2"}, "INVALID_HOURS"},
		{"hours fraction", map[string]string{"endpoint": "history", "hours": "1.5"}, "INVALID_HOURS"},
		{"hours with space", map[string]string{"endpoint": "history", "hours": " 2"}, "INVALID_HOURS"},
		{"hours huge", map[string]string{"endpoint": "history", "hours": "99999999999999999999"}, "INVALID_HOURS"},
		{"hours text", map[string]string{"endpoint": "history", "hours": "abc"}, "INVALID_HOURS"},
		// API.md: default 1 only when hours is absent; an explicit empty value is "anything else".
		{"hours empty", map[string]string{"endpoint": "history", "hours": ""}, "INVALID_HOURS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.get(tt.query, h.watcher)
			if r.Status != 400 || r.Body["code"] != tt.code {
				t.Fatalf("%d %s, want 400 %s", r.Status, r.Raw, tt.code)
			}
			// GET errors use the monitor envelope: error, code, requestId, timestamp; no success field.
			if _, ok := r.Body["success"]; ok || r.Body["error"] == "" || r.Body["timestamp"] == nil {
				t.Errorf("not the monitor envelope: %s", r.Raw)
			}
			if _, err := time.Parse(time.RFC3339Nano, r.Body["timestamp"].(string)); err != nil {
				t.Errorf("timestamp not ISO: %v", r.Body["timestamp"])
			}
		})
	}
	// Valid edges.
	for _, q := range []map[string]string{
		{"endpoint": "history", "hours": "1"}, {"endpoint": "history", "hours": "168"}, {"endpoint": "history", "hours": "007"},
		{"endpoint": "history"}, {"endpoint": ""}, {"endpoint": "alerts", "hours": "2x"}, {"endpoint": "metrics", "hours": ""},
	} {
		if r := h.get(q, h.watcher); r.Status != 200 {
			t.Errorf("%v: %d %s", q, r.Status, r.Raw)
		}
	}
}

func TestPostValidation(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		name   string
		body   string
		status int
		code   string
		detail string
	}{
		{"empty body", "", 400, "EMPTY_BODY", ""},
		{"blank body", "  \n", 400, "EMPTY_BODY", ""},
		{"broken JSON", `{"requests":`, 400, "JSON_PARSE_ERROR", ""},
		{"array body", `[1,2]`, 400, "INVALID_BODY_TYPE", ""},
		{"string body", `"x"`, 400, "INVALID_BODY_TYPE", ""},
		{"unknown top-level field", `{"requests":{"total":1},"cpu":1}`, 400, "VALIDATION_ERROR", `unknown field "cpu"`},
		{"unknown nested field", `{"requests":{"total":1,"bogus":2}}`, 400, "VALIDATION_ERROR", `unknown field "requests.bogus"`},
		{"nothing to store", `{}`, 400, "VALIDATION_ERROR", "at least one metric"},
		{"both null", `{"requests":null,"performance":null}`, 400, "VALIDATION_ERROR", "at least one metric"},
		{"requests not an object", `{"requests":5}`, 400, "VALIDATION_ERROR", "requests must be an object"},
		{"performance an array", `{"performance":[1]}`, 400, "VALIDATION_ERROR", "performance must be an object"},
		{"string number", `{"requests":{"total":"5"}}`, 400, "VALIDATION_ERROR", "requests.total must be a number"},
		{"negative", `{"requests":{"failed":-1}}`, 400, "VALIDATION_ERROR", "requests.failed must not be negative"},
		{"fractional count", `{"requests":{"total":1.5}}`, 400, "VALIDATION_ERROR", "requests.total must be an integer"},
		{"fractional slow queries", `{"performance":{"slowQueries":0.5}}`, 400, "VALIDATION_ERROR", "performance.slowQueries must be an integer"},
		{"error rate over 100", `{"performance":{"errorRate":101}}`, 400, "VALIDATION_ERROR", "performance.errorRate must be at most 100"},
		{"availability over 100", `{"performance":{"availability":100.5}}`, 400, "VALIDATION_ERROR", "performance.availability must be at most 100"},
		{"absurd value", `{"requests":{"total":1e300}}`, 400, "VALIDATION_ERROR", "requests.total must be at most"},
		{"parts over total", `{"requests":{"total":5,"successful":4,"failed":2}}`, 400, "VALIDATION_ERROR", "must not exceed requests.total"},
		{"valid", `{"requests":{"total":10,"successful":9,"failed":1,"rate":2.5},"performance":{"averageResponseTime":12.5,"slowQueries":0,"errorRate":10,"availability":99.9}}`, 200, "", ""},
		{"valid with one section", `{"performance":{"errorRate":0}}`, 200, "", ""},
		{"explicit zero", `{"requests":{"total":0}}`, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.post("/api/system-monitor", tt.body, h.watcher)
			if r.Status != tt.status {
				t.Fatalf("%d %s, want %d", r.Status, r.Raw, tt.status)
			}
			if tt.status != 200 {
				if r.Body["success"] != false || r.Body["code"] != tt.code {
					t.Errorf("body %s, want standard envelope with %s", r.Raw, tt.code)
				}
				if tt.detail != "" {
					details, _ := r.Body["details"].([]any)
					found := false
					for _, d := range details {
						found = found || strings.Contains(d.(string), tt.detail)
					}
					if !found {
						t.Errorf("details of %s lack %q", r.Raw, tt.detail)
					}
				}
				return
			}
			if r.Body["success"] != true || r.Body["message"] != "Metrics updated successfully" || r.Body["updated"] == nil {
				t.Errorf("body %s", r.Raw)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		body := `{"requests":{"total":1},"pad":"` + strings.Repeat("x", 70<<10) + `"}`
		if r := h.post("/api/system-monitor", body, h.watcher); r.Status != 413 || r.Body["code"] != "PAYLOAD_TOO_LARGE" {
			t.Errorf("%d %s", r.Status, r.Raw)
		}
	})
	t.Run("base64 body", func(t *testing.T) {
		ev := event("POST", "/api/system-monitor", nil, base64.StdEncoding.EncodeToString([]byte(`{"requests":{"total":3}}`)), h.watcher, 99)
		ev.IsBase64Encoded = true
		if r := call(t, h.app, ev); r.Status != 200 {
			t.Errorf("%d %s", r.Status, r.Raw)
		}
	})
}

func TestPostedSamplesAreAReportedSeriesOnly(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set(minuteM.Add(time.Second))
	r := h.post("/api/system-monitor", `{"requests":{"total":1000000,"successful":0,"failed":1000000,"rate":99999},"performance":{"averageResponseTime":60000,"slowQueries":5000,"errorRate":100,"availability":0}}`, h.watcher)
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	if got := num(t, r.Body, "updated", "requests", "total"); got != 1000000 {
		t.Errorf("updated.requests.total = %v", got)
	}

	// Stored under its own partition, with who reported it.
	out, err := h.env.Client.Query(context.Background(), &dynamodb.QueryInput{
		TableName:                 aws.String(h.env.Tables.Metrics),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "reported"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Items) != 1 {
		t.Fatalf("reported items = %d", len(out.Items))
	}
	if by, _ := out.Items[0]["reportedBy"].(*types.AttributeValueMemberS); by == nil || by.Value != "watcher" {
		t.Errorf("reportedBy = %v", out.Items[0]["reportedBy"])
	}

	// The measured figures count the POST as one successful request, nothing more.
	h.fake.Set(minuteM.Add(time.Minute + time.Second))
	m := h.get(map[string]string{"endpoint": "metrics"}, h.watcher)
	for path, want := range map[string]float64{"total": 1, "failed": 0, "successful": 1, "rate": 1} {
		if got := num(t, m.Body, "requests", path); got != want {
			t.Errorf("requests.%s = %v, want %v", path, got, want)
		}
	}
	if got := num(t, m.Body, "performance", "availability"); got != 100 {
		t.Errorf("availability = %v", got)
	}
	if got := num(t, m.Body, "performance", "slowQueries"); got != 0 {
		t.Errorf("slowQueries = %v", got)
	}
	// Nor does a posted sample feed the alert rules.
	if res, err := h.handler.Invoke(context.Background(), []byte(`{"source":"aws.events","detail-type":"Scheduled Event"}`)); err != nil {
		t.Fatalf("%v %v", res, err)
	}
	a := h.get(map[string]string{"endpoint": "alerts"}, h.watcher)
	if list := field(t, a.Body, "alerts").([]any); len(list) != 0 {
		t.Errorf("alerts from a posted sample: %s", a.Raw)
	}
}

func TestAuthenticationAndPermission(t *testing.T) {
	h := newHarness(t, nil)
	routes := []struct {
		method, path, body string
		getEnvelope        bool
	}{
		{"GET", "/api/system-monitor", "", true},
		{"POST", "/api/system-monitor", `{"requests":{"total":1}}`, false},
		{"POST", "/api/system-monitor/alerts/error_rate-1795687200/acknowledge", "", false},
	}
	for _, rt := range routes {
		for _, c := range []struct {
			name, token string
			status      int
			code        string
		}{
			{"no session", "", 401, "UNAUTHORIZED"},
			{"unknown session", "session_1795687200000_" + strings.Repeat("a", 43), 401, "UNAUTHORIZED"},
			{"malformed token", "garbage", 401, "UNAUTHORIZED"},
			{"role without systemMonitoring", h.viewer, 403, "FORBIDDEN"},
		} {
			t.Run(rt.method+" "+rt.path+" "+c.name, func(t *testing.T) {
				r := call(t, h.app, event(rt.method, rt.path, map[string]string{"endpoint": "metrics"}, rt.body, c.token, h.seq.Add(1)))
				if r.Status != c.status || r.Body["code"] != c.code {
					t.Fatalf("%d %s, want %d %s", r.Status, r.Raw, c.status, c.code)
				}
				_, hasSuccess := r.Body["success"]
				if rt.getEnvelope == hasSuccess {
					t.Errorf("wrong envelope for %s: %s", rt.method, r.Raw)
				}
			})
		}
	}
	// Routing answers in the contract's envelope too.
	if r := call(t, h.app, event("DELETE", "/api/system-monitor", nil, "", h.watcher, 1)); r.Status != 405 || r.Body["code"] != "METHOD_NOT_ALLOWED" {
		t.Errorf("DELETE: %d %s", r.Status, r.Raw)
	}
	if r := call(t, h.app, event("GET", "/api/system-monitor/nope", nil, "", h.watcher, 2)); r.Status != 404 || r.Body["code"] != "NOT_FOUND" {
		t.Errorf("unknown sub-path: %d %s", r.Status, r.Raw)
	}
}
