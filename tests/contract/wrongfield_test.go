package contract

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
)

// reported stands in for the test given to apitest.Do and keeps what it
// reports, so a test can assert that a mismatch is reported.
type reported struct {
	testing.TB
	errors []string
}

func (r *reported) Helper() {}

func (r *reported) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// rewritten is h with its answer changed by edit, as a handler changed
// without the document would answer.
func rewritten(t *testing.T, h apitest.Handler, edit func(res *events.APIGatewayV2HTTPResponse, body map[string]any)) apitest.Handler {
	return func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		res, err := h(ctx, ev)
		if err != nil {
			return res, err
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(res.Body), &body); err != nil {
			t.Fatalf("answer is not a JSON object: %s", res.Body)
		}
		headers := make(map[string]string, len(res.Headers))
		for k, v := range res.Headers {
			headers[k] = v
		}
		res.Headers = headers
		edit(&res, body)
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		res.Body = string(b)
		return res, nil
	}
}

// TestAWrongFieldFailsValidation: a real function's answer with a field
// added, renamed, retyped or dropped (or a required header dropped) fails
// the same apitest.Do check every contract test goes through, naming the
// field; the same answer unchanged passes it.
func TestAWrongFieldFailsValidation(t *testing.T) {
	s := newStack(t)
	admin := apitest.Login(t, s.apps["auth"], adminUser, adminPassword)
	nested := func(body map[string]any, path string) map[string]any {
		m := body
		for _, k := range strings.Split(path, ".") {
			m = m[k].(map[string]any)
		}
		return m
	}
	cases := []struct {
		name string
		fn   string
		req  apitest.Request
		edit func(res *events.APIGatewayV2HTTPResponse, body map[string]any)
		want string // in the report
	}{
		{"field added", "system-monitor", apitest.Request{Method: "GET", Path: "/api/system-monitor", Query: map[string]string{"endpoint": "metrics"}},
			func(_ *events.APIGatewayV2HTTPResponse, b map[string]any) { b["cpuTemperature"] = 42 }, "cpuTemperature"},
		{"field renamed", "system-monitor", apitest.Request{Method: "GET", Path: "/api/system-monitor", Query: map[string]string{"endpoint": "overview"}},
			func(_ *events.APIGatewayV2HTTPResponse, b map[string]any) {
				b["processing_time"] = b["processingTime"]
				delete(b, "processingTime")
			}, "processing"},
		{"field retyped (the old epoch lastUpdate)", "system-monitor", apitest.Request{Method: "GET", Path: "/api/system-monitor"},
			func(_ *events.APIGatewayV2HTTPResponse, b map[string]any) {
				nested(b, "overview")["lastUpdate"] = 4102444800000
			}, "lastUpdate"},
		{"nested field retyped (the old cpuLoad)", "traffic-manager", apitest.Request{Method: "GET", Path: "/api/traffic-manager", Query: map[string]string{"status": "true"}},
			func(_ *events.APIGatewayV2HTTPResponse, b map[string]any) { nested(b, "systemLoad")["cpuLoad"] = 0.05 }, "cpuLoad"},
		{"nested field renamed", "auth", apitest.Request{Method: "GET", Path: "/api/auth"},
			func(_ *events.APIGatewayV2HTTPResponse, b map[string]any) {
				u := nested(b, "session.user")
				u["userName"] = u["username"]
				delete(u, "username")
			}, "username"},
		{"field dropped", "session", apitest.Request{Method: "GET", Path: "/api/sessions/count"},
			func(_ *events.APIGatewayV2HTTPResponse, b map[string]any) { delete(b, "approximate") }, "approximate"},
		{"required header dropped", "session", apitest.Request{Method: "GET", Path: "/api/sessions"},
			func(res *events.APIGatewayV2HTTPResponse, _ map[string]any) { delete(res.Headers, "X-Request-ID") }, "X-Request-ID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.req.Headers = apitest.Bearer(admin)
			unchanged := &reported{TB: t}
			if res := apitest.Do(unchanged, s.apps[c.fn], c.req.Event()); res.Status != 200 || len(unchanged.errors) > 0 {
				t.Fatalf("the unchanged answer (%d) must pass: %v", res.Status, unchanged.errors)
			}
			changed := &reported{TB: t}
			apitest.Do(changed, rewritten(t, s.apps[c.fn], c.edit), c.req.Event())
			if len(changed.errors) == 0 {
				t.Fatal("the changed answer passed validation")
			}
			if !strings.Contains(strings.Join(changed.errors, "\n"), c.want) {
				t.Errorf("the report does not name %q: %v", c.want, changed.errors)
			}
			t.Logf("reported: %s", strings.SplitN(changed.errors[0], "\n", 2)[0])
		})
	}
}
