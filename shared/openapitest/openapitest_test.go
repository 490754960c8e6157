package openapitest

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/getkin/kin-openapi/openapi3"

	zenith "github.com/zenithfresh/zenith-serverless"
)

// The routes of API.md; the document must have exactly these operations.
var routes = []string{
	"GET /api/auth", "POST /api/auth",
	"GET /api/auth/users", "POST /api/auth/users",
	"PATCH /api/auth/users/{username}", "DELETE /api/auth/users/{username}",
	"GET /api/sessions", "DELETE /api/sessions", "GET /api/sessions/count", "DELETE /api/sessions/{id}",
	"GET /api/traffic-manager", "POST /api/traffic-manager",
	"GET /api/system-monitor", "POST /api/system-monitor", "POST /api/system-monitor/alerts/{id}/acknowledge",
	"GET /api/health",
}

func TestDocument(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(zenith.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("doc.Validate: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q: want 3.1", doc.OpenAPI)
	}
	var ops []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops = append(ops, method+" "+path)
			t.Run(method+" "+path, func(t *testing.T) {
				// Every operation answers 500 and 503 (a store down, with Retry-After).
				for _, status := range []int{500, 503} {
					ref := op.Responses.Status(status)
					if ref == nil {
						t.Fatalf("no %d response", status)
					}
					for _, h := range []string{"X-Request-ID", "Cache-Control"} {
						if ref.Value.Headers[h] == nil || !ref.Value.Headers[h].Value.Required {
							t.Errorf("%d: %s is not a required header", status, h)
						}
					}
					if status == 503 && (ref.Value.Headers["Retry-After"] == nil || !ref.Value.Headers["Retry-After"].Value.Required) {
						t.Errorf("503 without a required Retry-After")
					}
				}
				// Every unsafe method may answer 403 CSRF_REJECTED.
				if method != http.MethodGet {
					ref := op.Responses.Status(403)
					if ref == nil || !strings.Contains(jsonOf(t, ref.Value.Content.Get("application/json").Schema.Value), "CSRF_REJECTED") {
						t.Errorf("no 403 CSRF_REJECTED")
					}
				}
			})
		}
	}
	sort.Strings(ops)
	want := slices.Clone(routes)
	sort.Strings(want)
	if !slices.Equal(ops, want) {
		t.Errorf("operations:\n got %v\nwant %v", ops, want)
	}
	for _, name := range []string{"StandardError", "MonitorError", "TrafficError"} {
		if doc.Components.Schemas[name] == nil {
			t.Errorf("no envelope component %s", name)
		}
	}
	if s := doc.Components.SecuritySchemes; s["bearer"] == nil || s["sessionCookie"] == nil || s["sessionCookie"].Value.Name != "zenith_session" {
		t.Errorf("security schemes: %v", s)
	}
}

func jsonOf(t *testing.T, v any) string {
	b, err := (&openapi3.SchemaRef{Value: v.(*openapi3.Schema)}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type exchange struct {
	name string
	req  events.APIGatewayV2HTTPRequest
	res  events.APIGatewayV2HTTPResponse
}

// samples are valid exchanges of every route and status family.
func samples(t testing.TB) []exchange {
	login := jsonBody(t, map[string]any{"action": "login", "username": "admin", "password": "correct horse battery"})
	logout := jsonBody(t, map[string]any{"action": "logout", "sessionId": token})
	validate := jsonBody(t, map[string]any{"action": "validate", "sessionId": token})
	cookieReq := map[string]string{"origin": "https://app.example"}
	lockout := stdError("TOO_MANY_ATTEMPTS", "Too many failed login attempts, please try again later")
	lockout["retryAfter"] = 900
	overload := trafficError("SYS_OVERLOAD", "System is currently experiencing high load. Please try again shortly.")
	overload["retryAfter"] = 30
	overload["severity"] = "medium"
	overload["advice"] = "Monitor system status and retry when load decreases"
	trafficDeny := trafficError("RATE_LIMIT", "Rate limit exceeded. Please slow down your requests.")
	trafficDeny["retryAfter"] = 2
	trafficDeny["severity"] = "low"
	trafficDeny["advice"] = "Consider implementing exponential backoff in your client"
	monitorDeny := monitorError("RATE_LIMIT", "Rate limit exceeded. Please slow down your requests.")
	monitorDeny["retryAfter"] = 1
	monitorDeny["severity"] = "low"
	monitorDeny["advice"] = "Consider implementing exponential backoff in your client"
	degraded := mutate(t, trafficStatus(), func(m map[string]any) {
		m["status"] = "degraded"
		sl := at(m, "systemLoad")
		sl["error"], sl["message"], sl["timestamp"] = true, "Load check failed", nil
	})
	unavailable := answer(t, 503, stdError("SERVICE_UNAVAILABLE", "Service temporarily unavailable, please retry"))
	unavailable.Headers["Retry-After"] = "1"

	return []exchange{
		// /api/auth
		{"GET /api/auth bearer", req("GET", "/api/auth", bearer(), ""), api(t, 200, sessionAnswer(token, true))},
		{"GET /api/auth cookie", req("GET", "/api/auth", map[string]string{"cookie": "zenith_session=" + token}, ""), api(t, 200, sessionAnswer(handle, true))},
		{"GET /api/auth ?sessionId=", req("GET", "/api/auth?sessionId="+token, nil, ""), with(api(t, 200, sessionAnswer(token, true)), "Deprecation", "true")},
		{"GET /api/auth no token", req("GET", "/api/auth", nil, ""), api(t, 401, stdError("INVALID_SESSION", "Session token is required"))},
		{"GET /api/auth/ trailing slash", req("GET", "/api/auth/", bearer(), ""), api(t, 200, sessionAnswer(token, true))},
		{"login", req("POST", "/api/auth", nil, login), cookies(api(t, 200, sessionAnswer(token, false)), sessionCookie, deviceCookie)},
		{"login base64 body", func() events.APIGatewayV2HTTPRequest {
			r := req("POST", "/api/auth", map[string]string{"content-type": "application/x-www-form-urlencoded"}, base64.StdEncoding.EncodeToString([]byte(login)))
			r.IsBase64Encoded = true
			return r
		}(), cookies(api(t, 200, sessionAnswer(token, false)), sessionCookie)},
		{"validate", req("POST", "/api/auth", nil, validate), api(t, 200, sessionAnswer(token, true))},
		{"validate by header", req("POST", "/api/auth", bearer(), `{"action":"validate"}`), api(t, 200, sessionAnswer(token, true))},
		{"logout", req("POST", "/api/auth", nil, logout), cookies(api(t, 200, map[string]any{"success": true, "message": "Logged out successfully", "code": "SUCCESS", "requestId": requestID}), clearCookie)},
		{"logout unknown", req("POST", "/api/auth", nil, logout), cookies(api(t, 200, map[string]any{"success": false, "message": "Session not found", "code": "SESSION_NOT_FOUND", "requestId": requestID}), clearCookie)},
		{"login invalid", req("POST", "/api/auth", nil, `{"action":"login","username":"ab"}`), api(t, 400, validationError("Username must be between 3 and 50 characters", "Password is required"))},
		{"no action", req("POST", "/api/auth", nil, `{}`), api(t, 400, stdError("MISSING_ACTION", "Action is required"))},
		{"bad action", req("POST", "/api/auth", nil, `{"action":"fly"}`), api(t, 400, stdError("INVALID_ACTION", "Invalid action. Must be one of: login, logout, validate"))},
		{"empty body", req("POST", "/api/auth", nil, ""), api(t, 400, stdError("EMPTY_BODY", "Request body is required"))},
		{"wrong password", req("POST", "/api/auth", nil, login), api(t, 401, stdError("INVALID_CREDENTIALS", "Invalid username or password"))},
		{"csrf", req("POST", "/api/auth", map[string]string{"origin": "https://evil.example", "cookie": "zenith_session=" + token}, logout), api(t, 403, stdError("CSRF_REJECTED", "Cross-site request rejected"))},
		{"too large", req("POST", "/api/auth", nil, strings.Repeat(" ", 70000)), api(t, 413, stdError("PAYLOAD_TOO_LARGE", "Request body exceeds 65536 bytes"))},
		{"locked out", req("POST", "/api/auth", nil, login), with(api(t, 429, lockout), "Retry-After", "900")},
		{"rate limited", req("POST", "/api/auth", nil, login), with(api(t, 429, rateLimitError()), "Retry-After", "1", "RateLimit", `"api";r=0;t=1`, "X-RateLimit-Remaining", "0")},
		{"rate limited as 503", req("GET", "/api/auth", bearer(), ""), with(api(t, 503, rateLimitError()), "Retry-After", "1")},
		{"store down", req("GET", "/api/auth", bearer(), ""), unavailable},
		{"internal error", req("POST", "/api/auth", nil, login), api(t, 500, stdError("INTERNAL_ERROR", "Internal server error"))},

		// /api/auth/users
		{"list users", req("GET", "/api/auth/users?limit=2", bearer(), ""), api(t, 200, map[string]any{"success": true, "users": []any{userRecord(), userRecord()}, "cursor": "eyJrIjoiYWxpY2UifQ", "requestId": requestID})},
		{"list users empty cursor", req("GET", "/api/auth/users?cursor=", bearer(), ""), api(t, 200, map[string]any{"success": true, "users": []any{userRecord()}, "requestId": requestID})},
		{"GET /api/auth bearer beats an empty ?sessionId=", req("GET", "/api/auth?sessionId=", bearer(), ""), api(t, 200, sessionAnswer(token, true))},
		{"update with nulls", req("PATCH", "/api/auth/users/alice_1", bearer(), `{"name":null,"active":false}`),
			api(t, 200, map[string]any{"success": true, "message": "User updated", "user": userRecord(), "sessionsEnded": true, "requestId": requestID})},
		{"list users last page", req("GET", "/api/auth/users", bearer(), ""), api(t, 200, map[string]any{"success": true, "users": []any{}, "requestId": requestID})},
		{"list users bad limit", req("GET", "/api/auth/users?limit=0", bearer(), ""), api(t, 400, validationError("limit must be an integer from 1 to 100"))},
		{"list users anonymous", req("GET", "/api/auth/users", nil, ""), api(t, 401, stdError("UNAUTHORIZED", "Authentication required"))},
		{"list users staff", req("GET", "/api/auth/users", bearer(), ""), api(t, 403, stdError("FORBIDDEN", "Insufficient permissions"))},
		{"create user", req("POST", "/api/auth/users", bearer(), `{"username":"alice_1","password":"a long password","role":"staff_tester","name":"Alice"}`),
			api(t, 201, map[string]any{"success": true, "message": "User created", "user": userRecord(), "requestId": requestID})},
		{"create user exists", req("POST", "/api/auth/users", bearer(), `{"username":"alice_1","password":"a long password","role":"staff_tester"}`), api(t, 409, stdError("USER_EXISTS", "User already exists"))},
		{"update user", req("PATCH", "/api/auth/users/alice_1", bearer(), `{"role":"master_admin","active":true}`),
			api(t, 200, map[string]any{"success": true, "message": "User updated", "user": userRecord(), "sessionsEnded": true, "requestId": requestID})},
		{"update own password", req("PATCH", "/api/auth/users/admin", bearer(), `{"password":"a new long password","currentPassword":"the old one"}`),
			api(t, 200, map[string]any{"success": true, "message": "User updated", "user": userRecord(), "sessionsEnded": true, "requestId": requestID})},
		{"update wrong current password", req("PATCH", "/api/auth/users/admin", bearer(), `{"password":"a new long password","currentPassword":"wrong"}`), api(t, 401, stdError("INVALID_CREDENTIALS", "Current password is incorrect"))},
		{"update protected", req("PATCH", "/api/auth/users/admin", bearer(), `{"active":false}`), api(t, 409, stdError("PROTECTED_USER", "The master user cannot be changed this way"))},
		{"update other master", req("PATCH", "/api/auth/users/root_2", bearer(), `{"name":"Root"}`), api(t, 403, stdError("FORBIDDEN", "Insufficient permissions"))},
		{"update nothing", req("PATCH", "/api/auth/users/alice_1", bearer(), `{}`), api(t, 400, validationError("At least one of role, name, active or password is required"))},
		{"update unknown", req("PATCH", "/api/auth/users/nobody", bearer(), `{"name":"X"}`), api(t, 404, stdError("NOT_FOUND", "User not found"))},
		{"deactivate", req("DELETE", "/api/auth/users/alice_1", bearer(), ""), api(t, 200, map[string]any{"success": true, "message": "User deactivated", "user": mutate(t, userRecord(), func(m map[string]any) { m["active"] = false }), "requestId": requestID})},
		{"deactivate last admin", req("DELETE", "/api/auth/users/root_2", bearer(), ""), api(t, 409, stdError("LAST_ADMIN", "The last active master_admin cannot be demoted, deactivated or deleted"))},

		// /api/sessions
		{"list sessions", req("GET", "/api/sessions", bearer(), ""), api(t, 200, map[string]any{"sessions": []any{
			map[string]any{"id": handle, "createdAt": isoTime, "lastActivity": isoTime, "expiresAt": isoTime, "current": true},
		}, "requestId": requestID})},
		{"list all sessions", req("GET", "/api/sessions?all=TRUE&limit=1", bearer(), ""), api(t, 200, map[string]any{"sessions": []any{
			map[string]any{"id": handle, "userId": "alice_1", "createdAt": isoTime, "lastActivity": isoTime, "expiresAt": isoTime, "current": false},
		}, "cursor": "abc", "requestId": requestID})},
		{"list sessions bad", req("GET", "/api/sessions?all=maybe", bearer(), ""), api(t, 400, validationError("all must be true or false"))},
		{"end all sessions", req("DELETE", "/api/sessions", map[string]string{"cookie": "zenith_session=" + token, "origin": "https://app.example"}, ""),
			cookies(api(t, 200, map[string]any{"success": true, "message": "All sessions ended", "code": "SUCCESS", "ended": 2, "requestId": requestID}), clearCookie)},
		{"end user's sessions", req("DELETE", "/api/sessions?userId=alice_1", bearer(), ""), api(t, 200, map[string]any{"success": true, "message": "All sessions ended", "code": "SUCCESS", "ended": 0, "requestId": requestID})},
		{"end sessions of unknown user", req("DELETE", "/api/sessions?userId=nobody", bearer(), ""), api(t, 404, stdError("NOT_FOUND", "User not found"))},
		{"count sessions", req("GET", "/api/sessions/count", bearer(), ""), api(t, 200, map[string]any{"count": 3, "approximate": false, "requestId": requestID})},
		{"end one session", req("DELETE", "/api/sessions/"+handle, bearer(), ""), api(t, 200, map[string]any{"success": true, "message": "Session ended", "code": "SUCCESS", "requestId": requestID})},
		{"end other's session", req("DELETE", "/api/sessions/fedcba9876543210", bearer(), ""), api(t, 404, stdError("NOT_FOUND", "Session not found"))},
		{"end session named count", req("DELETE", "/api/sessions/count", bearer(), ""), api(t, 404, stdError("NOT_FOUND", "Session not found"))},
		{"sessions cookie no origin", req("DELETE", "/api/sessions/"+handle, map[string]string{"cookie": "zenith_session=" + token}, ""), api(t, 403, stdError("CSRF_REJECTED", "Cross-site request rejected"))},

		// /api/traffic-manager
		{"status", req("GET", "/api/traffic-manager?status=true", nil, ""), answer(t, 200, trafficStatus())},
		{"status degraded", req("GET", "/api/traffic-manager?status=True", nil, ""), answer(t, 200, degraded)},
		{"front door", req("GET", "/api/traffic-manager", nil, ""), with(limited(t, "frontdoor", 200, map[string]any{
			"success": true, "message": "Request processed successfully",
			"metrics":   map[string]any{"processingTime": "2ms", "systemLoad": "0.05", "requestId": requestID},
			"requestId": requestID,
		}), "X-Processing-Time", "2", "X-System-Load", "0.05")},
		{"front door unknown load", req("GET", "/api/traffic-manager?status=false", nil, ""), with(limited(t, "frontdoor", 200, map[string]any{
			"success": true, "message": "Request processed successfully",
			"metrics":   map[string]any{"processingTime": "0ms", "systemLoad": "unknown", "requestId": requestID},
			"requestId": requestID,
		}), "X-Processing-Time", "0", "X-System-Load", "unknown")},
		{"bad status", req("GET", "/api/traffic-manager?status=yes", nil, ""), limited(t, "frontdoor", 400, trafficError("INVALID_PARAMETER", "status must be 'true' or 'false'"))},
		{"shed", req("GET", "/api/traffic-manager", nil, ""), with(limited(t, "frontdoor", 503, overload), "Retry-After", "30")},
		{"front door limited", req("GET", "/api/traffic-manager", nil, ""), with(limited(t, "frontdoor", 429, trafficDeny), "Retry-After", "2")},
		{"override", req("POST", "/api/traffic-manager", bearer(), `{"simulateLoad":true,"connections":0,"load":0.5}`), api(t, 200, map[string]any{
			"success": true, "message": "Traffic simulation updated successfully",
			"applied":        map[string]any{"simulateLoad": true, "connectionsAdded": 0, "loadAdded": 0.5},
			"currentMetrics": map[string]any{"activeConnections": 0.4, "currentLoad": 0.55, "lastUpdated": epochMs},
			"processingTime": "4ms", "requestId": requestID,
		})},
		{"override invalid", req("POST", "/api/traffic-manager", bearer(), `{"load":2}`), api(t, 400, validationError("load must be a number between 0 and 1"))},
		{"override staff", req("POST", "/api/traffic-manager", bearer(), `{}`), api(t, 403, stdError("FORBIDDEN", "Insufficient permissions"))},

		// /api/system-monitor
		{"overview", req("GET", "/api/system-monitor", bearer(), ""), api(t, 200, overview())},
		{"overview unknown figures", req("GET", "/api/system-monitor?endpoint=overview&hours=x", bearer(), ""), api(t, 200, mutate(t, overview(), func(m map[string]any) {
			at(m, "overview")["uptime"] = nil
			tr := at(m, "traffic")
			tr["requestsPerMinute"], tr["totalRequests"], tr["errorRate"], tr["activeUsers"] = nil, nil, nil, nil
			pf := at(m, "performance")
			pf["averageResponseTime"], pf["memoryUsage"] = nil, nil
			m["alerts"] = []any{}
		}))},
		{"metrics", req("GET", "/api/system-monitor?endpoint=metrics", bearer(), ""), api(t, 200, metricsAnswer())},
		{"history", req("GET", "/api/system-monitor?endpoint=history&hours=2", bearer(), ""), api(t, 200, history(2))},
		{"health", req("GET", "/api/system-monitor?endpoint=health", bearer(), ""), api(t, 200, map[string]any{"status": "degraded", "score": 85, "alerts": []any{alert()}, "processingTime": "3ms", "requestId": requestID})},
		{"alerts", req("GET", "/api/system-monitor?endpoint=alerts", bearer(), ""), api(t, 200, map[string]any{"alerts": []any{alert()}, "timestamp": epochMs, "processingTime": "3ms", "requestId": requestID})},
		{"bad endpoint", req("GET", "/api/system-monitor?endpoint=cpu", bearer(), ""), api(t, 400, monitorError("INVALID_ENDPOINT", "Invalid endpoint: use overview, metrics, history, health or alerts"))},
		{"bad hours", req("GET", "/api/system-monitor?endpoint=history&hours=2x", bearer(), ""), api(t, 400, monitorError("INVALID_HOURS", "hours must be an integer from 1 to 168"))},
		{"monitor anonymous", req("GET", "/api/system-monitor", nil, ""), api(t, 401, monitorError("UNAUTHORIZED", "Authentication required"))},
		{"monitor staff", req("GET", "/api/system-monitor", bearer(), ""), api(t, 403, monitorError("FORBIDDEN", "Insufficient permissions"))},
		{"monitor limited", req("GET", "/api/system-monitor", bearer(), ""), with(api(t, 429, monitorDeny), "Retry-After", "1")},
		{"monitor store down", req("GET", "/api/system-monitor", bearer(), ""), with(answer(t, 503, monitorError("SERVICE_UNAVAILABLE", "Service temporarily unavailable, please retry")), "Retry-After", "1")},
		{"report", req("POST", "/api/system-monitor", bearer(), `{"requests":{"total":10,"successful":9,"failed":1},"performance":null}`), api(t, 200, map[string]any{
			"success": true, "message": "Metrics updated successfully",
			"updated":        map[string]any{"requests": map[string]any{"total": 10, "successful": 9, "failed": 1}, "performance": nil},
			"processingTime": "6ms", "requestId": requestID,
		})},
		{"report unknown field", req("POST", "/api/system-monitor", bearer(), `{"cpu":1}`), api(t, 400, validationError(`unknown field "cpu"`))},
		{"acknowledge", req("POST", "/api/system-monitor/alerts/"+alertID+"/acknowledge", bearer(), ""), api(t, 200, map[string]any{
			"success": true, "message": "Alert acknowledged", "alert": mutate(t, alert(), func(m map[string]any) { m["acknowledged"] = true }), "processingTime": "2ms", "requestId": requestID,
		})},
		{"acknowledge unknown", req("POST", "/api/system-monitor/alerts/nope/acknowledge", bearer(), ""), api(t, 404, stdError("NOT_FOUND", "Alert not found"))},

		// /api/health
		{"health ok", req("GET", "/api/health", nil, ""), answer(t, 200, map[string]any{"status": "ok", "checks": map[string]any{"dynamodb": "ok"}, "version": "1.4.2", "timestamp": isoTime, "requestId": requestID})},
		{"health unavailable", req("GET", "/api/health", nil, ""), with(answer(t, 503, map[string]any{"status": "unavailable", "checks": map[string]any{"dynamodb": "unreachable"}, "version": "1.4.2", "timestamp": isoTime, "requestId": requestID}), "Retry-After", "5")},
		{"health with token, store down", req("GET", "/api/health", bearer(), ""), unavailable},
		{"health sub-path", req("GET", "/api/health/deep", nil, ""), answer(t, 404, stdError("NOT_FOUND", "No route for /api/health/deep"))},
		{"health POST", req("POST", "/api/health", nil, ""), with(answer(t, 405, stdError("METHOD_NOT_ALLOWED", "Method POST not allowed")), "Allow", "GET")},

		// unmatched requests
		{"unknown path", req("GET", "/api/nothing", nil, ""), api(t, 404, stdError("NOT_FOUND", "No route for /api/nothing"))},
		{"unknown root", req("POST", "/", nil, "{}"), api(t, 404, stdError("NOT_FOUND", "No route for /"))},
		{"unknown monitor sub-path", req("GET", "/api/system-monitor/cpu", bearer(), ""), api(t, 404, monitorError("NOT_FOUND", "No route for /api/system-monitor/cpu"))},
		{"unknown monitor sub-path POST", req("POST", "/api/system-monitor/cpu", bearer(), "{}"), api(t, 404, stdError("NOT_FOUND", "No route for /api/system-monitor/cpu"))},
		{"unknown traffic sub-path", req("GET", "/api/traffic-manager/x", nil, ""), api(t, 404, trafficError("NOT_FOUND", "No route for /api/traffic-manager/x"))},
		{"wrong method", req("PUT", "/api/auth", nil, "{}"), with(api(t, 405, stdError("METHOD_NOT_ALLOWED", "Method PUT not allowed")), "Allow", "GET, POST")},
		{"HEAD", req("HEAD", "/api/sessions", nil, ""), with(api(t, 405, stdError("METHOD_NOT_ALLOWED", "Method HEAD not allowed")), "Allow", "GET, DELETE")},
		{"GET on acknowledge", req("GET", "/api/system-monitor/alerts/"+alertID+"/acknowledge", bearer(), ""), with(api(t, 405, monitorError("METHOD_NOT_ALLOWED", "Method GET not allowed")), "Allow", "POST")},
		{"GET on a session", req("GET", "/api/sessions/"+handle, bearer(), ""), with(api(t, 405, stdError("METHOD_NOT_ALLOWED", "Method GET not allowed")), "Allow", "DELETE")},
		{"unknown path limited", req("GET", "/api/nothing", nil, ""), with(api(t, 429, rateLimitError()), "Retry-After", "1")},
		{"unknown monitor sub-path limited", req("GET", "/api/system-monitor/x", bearer(), ""), with(api(t, 429, monitorDeny), "Retry-After", "1")},
		{"unknown path store down", req("GET", "/api/nothing", bearer(), ""), unavailable},
		{"cookie-authenticated with origin", req("POST", "/api/system-monitor", map[string]string{"cookie": "zenith_session=" + token, "origin": cookieReq["origin"]}, `{"performance":{"errorRate":1.5}}`), api(t, 200, map[string]any{
			"success": true, "message": "Metrics updated successfully",
			"updated":        map[string]any{"requests": nil, "performance": map[string]any{"errorRate": 1.5}},
			"processingTime": "6ms", "requestId": requestID,
		})},
	}
}

func TestSampleExchanges(t *testing.T) {
	v := load(t)
	ss := samples(t)
	for _, x := range ss {
		t.Run(x.name, func(t *testing.T) {
			if err := v.Check(x.req, x.res); err != nil {
				t.Fatal(err)
			}
		})
	}
	c := v.Counts()
	if c.Responses != len(ss) {
		t.Errorf("Counts().Responses = %d, want %d", c.Responses, len(ss))
	}
	// Every documented operation has at least one sample answered 2xx.
	for _, r := range routes {
		ok := false
		for k := range c.Answers {
			if strings.HasPrefix(k, r+" 2") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("no 2xx sample of %s", r)
		}
	}
}

// TestWrongResponses: answers that break the contract fail, naming route, status and field.
func TestWrongResponses(t *testing.T) {
	v := load(t)
	login := req("POST", "/api/auth", nil, `{"action":"login","username":"admin","password":"correct horse battery"}`)
	loginOK := cookies(api(t, 200, sessionAnswer(token, false)), sessionCookie, deviceCookie)
	monitor := func(q string) events.APIGatewayV2HTTPRequest {
		return req("GET", "/api/system-monitor"+q, bearer(), "")
	}
	status := req("GET", "/api/traffic-manager?status=true", nil, "")
	ack := req("POST", "/api/system-monitor/alerts/"+alertID+"/acknowledge", bearer(), "")

	tests := []struct {
		name string
		req  events.APIGatewayV2HTTPRequest
		res  events.APIGatewayV2HTTPResponse
		want []string // substrings of the error
	}{
		{"extra field", login, api(t, 200, mutate(t, sessionAnswer(token, false), func(m map[string]any) { m["token"] = token })),
			[]string{"POST /api/auth → 200", "[POST /api/auth]", "additional properties 'token' not allowed"}},
		{"extra nested field", login, api(t, 200, mutate(t, sessionAnswer(token, false), func(m map[string]any) { at(m, "session.user")["passwordHash"] = "x" })),
			[]string{"at /session/user", "additional properties 'passwordHash' not allowed"}},
		{"renamed field", login, api(t, 200, mutate(t, sessionAnswer(token, false), func(m map[string]any) {
			f := at(m, "features.features")
			f["aiApis"] = f["aiAnalysis"]
			delete(f, "aiAnalysis")
		})), []string{"at /features/features", "aiAnalysis", "aiApis"}},
		{"string for number", monitor("?endpoint=metrics"), api(t, 200, mutate(t, metricsAnswer(), func(m map[string]any) { at(m, "requests")["total"] = "1234" })),
			[]string{"GET /api/system-monitor → 200", "at /requests/total", "got string, want"}},
		{"number for null (cpu)", monitor("?endpoint=metrics"), api(t, 200, mutate(t, metricsAnswer(), func(m map[string]any) { at(m, "resources")["cpuLoad"] = 0.3 })),
			[]string{"at /resources/cpuLoad", "want null"}},
		{"cpuLoad of status", status, answer(t, 200, mutate(t, trafficStatus(), func(m map[string]any) { at(m, "systemLoad")["cpuLoad"] = 0.05 })),
			[]string{"GET /api/traffic-manager → 200", "at /systemLoad/cpuLoad"}},
		{"lastUpdate in epoch ms", monitor(""), api(t, 200, mutate(t, overview(), func(m map[string]any) { at(m, "overview")["lastUpdate"] = epochMs })),
			[]string{"at /overview/lastUpdate", "want string"}},
		{"lastUpdate without milliseconds", monitor(""), api(t, 200, mutate(t, overview(), func(m map[string]any) { at(m, "overview")["lastUpdate"] = "2100-01-01T00:00:00Z" })),
			[]string{"at /overview/lastUpdate", "does not match pattern"}},
		{"acknowledge without processingTime", ack, api(t, 200, map[string]any{"success": true, "message": "Alert acknowledged", "alert": alert(), "requestId": requestID}),
			[]string{"missing property 'processingTime'"}},
		{"timeRange in words", monitor("?endpoint=history"), api(t, 200, mutate(t, history(1), func(m map[string]any) { m["timeRange"] = "1 hour" })),
			[]string{"at /timeRange", "does not match pattern"}},
		{"no processingTime", monitor("?endpoint=alerts"), api(t, 200, map[string]any{"alerts": []any{}, "timestamp": epochMs, "requestId": requestID}),
			[]string{"missing property 'processingTime'"}},
		{"processingTime a number", status, answer(t, 200, mutate(t, trafficStatus(), func(m map[string]any) { m["processingTime"] = 1 })),
			[]string{"at /processingTime"}},
		{"missing X-Request-ID", login, without(loginOK, "X-Request-ID"), []string{`response header "X-Request-ID" missing`}},
		{"missing rate-limit header", login, without(loginOK, "X-RateLimit-Limit"), []string{`"X-RateLimit-Limit" missing`}},
		{"rate-limit header not a number", login, with(loginOK, "X-RateLimit-Remaining", "many"), []string{"X-RateLimit-Remaining"}},
		{"wrong Cache-Control", login, with(loginOK, "Cache-Control", "max-age=60"), []string{`"Cache-Control"`}},
		{"429 without Retry-After", login, api(t, 429, rateLimitError()), []string{`"Retry-After" missing`}},
		{"bad second Set-Cookie", login, cookies(loginOK, sessionCookie, "zenith_device=abc; Path=/"), []string{"Set-Cookie", "value 2 of 2"}},
		{"undocumented status", login, api(t, 418, stdError("TEAPOT", "no")), []string{"→ 418", "status is not supported"}},
		{"undocumented code", login, api(t, 401, stdError("UNAUTHORIZED", "Authentication required")), []string{"→ 401", "at /code"}},
		{"validation without details", login, api(t, 400, stdError("VALIDATION_ERROR", "Validation failed")), []string{"missing property 'details'"}},
		{"monitor GET in the standard envelope", monitor(""), api(t, 400, stdError("INVALID_ENDPOINT", "bad")), []string{"GET /api/system-monitor → 400"}},
		{"not JSON", login, func() events.APIGatewayV2HTTPResponse {
			r := api(t, 200, nil)
			r.Body = "<html>"
			return r
		}(), []string{"failed to decode response body"}},
		{"no Content-Type", login, without(loginOK, "Content-Type"), []string{"Content-Type"}},
		{"2xx for an unknown path", req("GET", "/api/nothing", nil, ""), api(t, 200, map[string]any{"requestId": requestID}),
			[]string{"GET /api/nothing → 200", "no operation is documented"}},
		{"unknown sub-path in the wrong envelope", req("GET", "/api/system-monitor/x", bearer(), ""), api(t, 404, stdError("NOT_FOUND", "No route")),
			[]string{"described by GET /api/system-monitor's 404"}},
		{"405 without Allow", req("PUT", "/api/auth", nil, ""), api(t, 405, stdError("METHOD_NOT_ALLOWED", "Method PUT not allowed")),
			[]string{"the path has no PUT", `"Allow" missing`}},
		{"undocumented status for an unknown path", req("GET", "/api/nothing", nil, ""), api(t, 400, validationError("x")),
			[]string{"status 400 is not documented"}},
		{"health 503 without Retry-After", req("GET", "/api/health", nil, ""), answer(t, 503, map[string]any{"status": "unavailable", "checks": map[string]any{"dynamodb": "unreachable"}, "version": "1", "timestamp": isoTime, "requestId": requestID}),
			[]string{"GET /api/health → 503", `"Retry-After" missing`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Check(tt.req, tt.res)
			if err == nil {
				t.Fatal("the wrong answer passed")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *openapitest.Error: %v", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			t.Log(err)
			if len(err.Error()) > 2000 {
				t.Errorf("message of %d bytes; want a short one:\n%v", len(err.Error()), err)
			}
		})
	}
}

// TestInvalidRequests: a refused invalid request passes (its 4xx answer is
// checked); the same request answered 2xx fails.
func TestInvalidRequests(t *testing.T) {
	v := load(t)
	tests := []struct {
		name    string
		req     events.APIGatewayV2HTTPRequest
		refusal events.APIGatewayV2HTTPResponse
		success events.APIGatewayV2HTTPResponse
		want    string
	}{
		{"unknown action", req("POST", "/api/auth", nil, `{"action":"fly"}`),
			api(t, 400, stdError("INVALID_ACTION", "Invalid action. Must be one of: login, logout, validate")),
			api(t, 200, sessionAnswer(token, true)), "request body has an error"},
		{"short password", req("POST", "/api/auth", nil, `{"action":"login","username":"admin","password":"short"}`),
			api(t, 400, validationError("Password must be between 8 and 100 characters")),
			cookies(api(t, 200, sessionAnswer(token, false)), sessionCookie), "at /password"},
		{"unknown field", req("POST", "/api/traffic-manager", bearer(), `{"load":0.5,"cpu":1}`),
			api(t, 400, validationError(`unknown field "cpu"`)),
			api(t, 200, map[string]any{
				"success": true, "message": "Traffic simulation updated successfully",
				"applied":        map[string]any{"simulateLoad": false, "connectionsAdded": 0, "loadAdded": 0},
				"currentMetrics": map[string]any{"activeConnections": 0, "currentLoad": 0, "lastUpdated": epochMs},
				"processingTime": "1ms", "requestId": requestID,
			}), "additional properties 'cpu' not allowed"},
		{"limit out of range", req("GET", "/api/sessions?limit=500", bearer(), ""),
			api(t, 400, validationError("limit must be an integer from 1 to 100")),
			api(t, 200, map[string]any{"sessions": []any{}, "requestId": requestID}), `parameter "limit"`},
		{"no credentials", req("GET", "/api/sessions/count", nil, ""),
			api(t, 401, stdError("UNAUTHORIZED", "Authentication required")),
			api(t, 200, map[string]any{"count": 1, "approximate": false, "requestId": requestID}), "security requirements failed"},
		{"bad status parameter", req("GET", "/api/traffic-manager?status=", nil, ""),
			limited(t, "frontdoor", 400, trafficError("INVALID_PARAMETER", "status must be 'true' or 'false'")),
			answer(t, 200, trafficStatus()), `parameter "status"`},
		{"bad alert id", req("POST", "/api/system-monitor/alerts/NOPE/acknowledge", bearer(), ""),
			api(t, 404, stdError("NOT_FOUND", "Alert not found")),
			api(t, 200, map[string]any{"success": true, "message": "Alert acknowledged", "alert": alert(), "processingTime": "2ms", "requestId": requestID}), `parameter "id"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := v.Check(tt.req, tt.refusal); err != nil {
				t.Errorf("the refusal failed: %v", err)
			}
			err := v.Check(tt.req, tt.success)
			if err == nil {
				t.Fatal("a 2xx answer to an invalid request passed")
			}
			var e *Error
			if !errors.As(err, &e) || !strings.HasPrefix(e.Part, "request") {
				t.Fatalf("want a request error, got %v", err)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error lacks %q:\n%v", tt.want, err)
			}
		})
	}
	if c := v.Counts(); c.Requests != len(tests) || c.Responses != 2*len(tests) {
		t.Errorf("Counts() = %d requests, %d responses; want %d, %d", c.Requests, c.Responses, len(tests), 2*len(tests))
	}
}

// TestCheckHTTP speaks real HTTP: the answer's headers as net/http sends
// them (two Set-Cookie lines, canonical names), the request's cookie header.
func TestCheckHTTP(t *testing.T) {
	v := load(t)
	var mu sync.Mutex
	var serve events.APIGatewayV2HTTPResponse
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		res := serve
		mu.Unlock()
		for k, val := range res.Headers {
			w.Header().Set(k, val)
		}
		for _, c := range res.Cookies {
			w.Header().Add("Set-Cookie", c)
		}
		w.WriteHeader(res.StatusCode)
		_, _ = io.WriteString(w, res.Body)
	}))
	defer srv.Close()

	do := func(method, target, body string, header map[string]string, res events.APIGatewayV2HTTPResponse) error {
		mu.Lock()
		serve = res
		mu.Unlock()
		r, err := http.NewRequest(method, srv.URL+target, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, val := range header {
			r.Header.Set(k, val)
		}
		got, err := srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer got.Body.Close()
		b, err := io.ReadAll(got.Body)
		if err != nil {
			t.Fatal(err)
		}
		return v.CheckHTTP(r, []byte(body), got, b)
	}

	login := `{"action":"login","username":"admin","password":"correct horse battery"}`
	if err := do("POST", "/api/auth", login, map[string]string{"Content-Type": "application/json"}, cookies(api(t, 200, sessionAnswer(token, false)), sessionCookie, deviceCookie)); err != nil {
		t.Errorf("login: %v", err)
	}
	if err := do("GET", "/api/sessions/count", "", map[string]string{"Cookie": "zenith_session=" + token}, api(t, 200, map[string]any{"count": 1, "approximate": true, "requestId": requestID})); err != nil {
		t.Errorf("count by cookie: %v", err)
	}
	if err := do("GET", "/api/sessions/count", "", nil, api(t, 200, map[string]any{"count": 1, "approximate": true, "requestId": requestID})); err == nil {
		t.Error("a 2xx without credentials passed")
	}
	err := do("POST", "/api/auth", login, nil, cookies(api(t, 200, sessionAnswer(token, false)), sessionCookie, "zenith_device=x"))
	if err == nil || !strings.Contains(err.Error(), "Set-Cookie") {
		t.Errorf("a bad second Set-Cookie: %v", err)
	}
	if c := v.Counts(); c.Responses != 4 || c.Requests != 3 {
		t.Errorf("Counts() = %+v", c)
	}
}

// TestBase64 undoes base64 on both sides.
func TestBase64(t *testing.T) {
	v := load(t)
	ev := req("POST", "/api/traffic-manager", bearer(), base64.StdEncoding.EncodeToString([]byte(`{"simulateLoad":"yes"}`)))
	ev.IsBase64Encoded = true
	ok := api(t, 200, map[string]any{
		"success": true, "message": "Traffic simulation updated successfully",
		"applied":        map[string]any{"simulateLoad": false, "connectionsAdded": 0, "loadAdded": 0},
		"currentMetrics": map[string]any{"activeConnections": 0, "currentLoad": 0, "lastUpdated": epochMs},
		"processingTime": "1ms", "requestId": requestID,
	})
	if err := v.Check(ev, ok); err == nil || !strings.Contains(err.Error(), "at /simulateLoad") {
		t.Errorf("the decoded body was not validated: %v", err)
	}
	res := ok
	res.Body = base64.StdEncoding.EncodeToString([]byte(ok.Body))
	res.IsBase64Encoded = true
	ev.Body = base64.StdEncoding.EncodeToString([]byte(`{"simulateLoad":false}`))
	if err := v.Check(ev, res); err != nil {
		t.Errorf("base64 answer: %v", err)
	}
}

// TestConcurrent checks from many goroutines (run with -race) and counts exactly.
func TestConcurrent(t *testing.T) {
	v := load(t)
	ss := samples(t)
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*len(ss))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, x := range ss {
				if err := v.Check(x.req, x.res); err != nil {
					errs <- fmt.Errorf("%s: %w", x.name, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c := v.Counts()
	twoXX := 0
	for _, x := range ss {
		if x.res.StatusCode/100 == 2 {
			twoXX++
		}
	}
	if c.Responses != workers*len(ss) || c.Requests != workers*twoXX {
		t.Errorf("Counts() = %d responses, %d requests; want %d, %d", c.Responses, c.Requests, workers*len(ss), workers*twoXX)
	}
	total := 0
	for _, n := range c.Answers {
		total += n
	}
	if total != c.Responses {
		t.Errorf("Answers sum to %d, Responses = %d", total, c.Responses)
	}
}
