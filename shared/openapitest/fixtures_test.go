package openapitest

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	zenith "github.com/zenithfresh/zenith-serverless"
)

// Fixed values of the hand-built exchanges (shapes as the handlers' tests show them).
const (
	token     = "session_4102444800000_Abc123Def456Ghi789Jkl012Mno345Pqr678Stu901V"
	handle    = "0123456789abcdef"
	isoTime   = "2100-01-01T00:00:00.000Z"
	epochMs   = 4102444800000
	requestID = "Zx01AbCdIAMEJgw="
	alertID   = "error_rate-4102444740"
)

func load(t testing.TB) *Validator {
	t.Helper()
	v, err := Load(zenith.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// req builds an API Gateway event; target may carry a query ("/api/x?a=b").
func req(method, target string, headers map[string]string, body string) events.APIGatewayV2HTTPRequest {
	path, rawQuery, _ := strings.Cut(target, "?")
	var query map[string]string
	if rawQuery != "" {
		values, _ := url.ParseQuery(rawQuery)
		query = map[string]string{}
		for k := range values {
			query[k] = values.Get(k)
		}
	}
	return events.APIGatewayV2HTTPRequest{
		Version: "2.0", RawPath: path, RawQueryString: rawQuery, QueryStringParameters: query,
		Headers: headers, Body: body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: requestID,
			HTTP:      events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path, SourceIP: "198.51.100.7"},
		},
	}
}

func bearer() map[string]string { return map[string]string{"authorization": "Bearer " + token} }

func jsonBody(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// answer is a response with the headers every answer has.
func answer(t testing.TB, status int, body any) events.APIGatewayV2HTTPResponse {
	t.Helper()
	return events.APIGatewayV2HTTPResponse{
		StatusCode: status,
		Headers: map[string]string{
			"Content-Type":  "application/json",
			"X-Request-ID":  requestID,
			"Cache-Control": "no-cache, no-store, must-revalidate",
		},
		Body: jsonBody(t, body),
	}
}

// limited is an answer that passed the limiter under policy.
func limited(t testing.TB, policy string, status int, body any) events.APIGatewayV2HTTPResponse {
	t.Helper()
	res := answer(t, status, body)
	rpm := 600
	if policy == "frontdoor" {
		rpm = 100
	}
	res.Headers["X-RateLimit-Limit"] = strconv.Itoa(rpm)
	res.Headers["X-RateLimit-Remaining"] = "659"
	res.Headers["X-RateLimit-Reset"] = strconv.FormatInt(epochMs+100, 10)
	res.Headers["RateLimit-Policy"] = `"` + policy + `";q=` + strconv.Itoa(rpm) + ";w=60"
	res.Headers["RateLimit"] = `"` + policy + `";r=659;t=1`
	return res
}

func api(t testing.TB, status int, body any) events.APIGatewayV2HTTPResponse {
	return limited(t, "api", status, body)
}

func with(res events.APIGatewayV2HTTPResponse, kv ...string) events.APIGatewayV2HTTPResponse {
	h := make(map[string]string, len(res.Headers)+len(kv)/2)
	for k, v := range res.Headers {
		h[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = kv[i+1]
	}
	res.Headers = h
	return res
}

func without(res events.APIGatewayV2HTTPResponse, names ...string) events.APIGatewayV2HTTPResponse {
	h := make(map[string]string, len(res.Headers))
	for k, v := range res.Headers {
		h[k] = v
	}
	for _, n := range names {
		delete(h, n)
	}
	res.Headers = h
	return res
}

func cookies(res events.APIGatewayV2HTTPResponse, cs ...string) events.APIGatewayV2HTTPResponse {
	res.Cookies = cs
	return res
}

// --- bodies ---

func stdError(code, message string) map[string]any {
	return map[string]any{"success": false, "error": message, "code": code, "requestId": requestID}
}

func validationError(details ...string) map[string]any {
	m := stdError("VALIDATION_ERROR", "Validation failed")
	m["details"] = details
	return m
}

func rateLimitError() map[string]any {
	m := stdError("RATE_LIMIT", "Rate limit exceeded. Please slow down your requests.")
	m["retryAfter"] = 1
	m["severity"] = "low"
	m["advice"] = "Consider implementing exponential backoff in your client"
	return m
}

func monitorError(code, message string) map[string]any {
	return map[string]any{"error": message, "code": code, "requestId": requestID, "timestamp": "2100-01-01T00:00:00.123456789Z"}
}

func trafficError(code, message string) map[string]any {
	return map[string]any{"error": true, "message": message, "code": code, "requestId": requestID, "timestamp": "2100-01-01T00:00:00Z"}
}

func permissions() map[string]any {
	return map[string]any{
		"name": "Master Administrator", "access": "all_features",
		"aiApis": true, "competitiveAnalysis": true, "geoOptimization": true, "advancedAudits": true,
		"systemMonitoring": true, "userManagement": true, "billingAccess": true, "whiteLabel": true,
		"trafficControl": true, "apiAccess": "unlimited", "exportFormats": "all",
	}
}

func sessionAnswer(id string, lastActivity bool) map[string]any {
	session := map[string]any{
		"id": id,
		"user": map[string]any{
			"username": "admin", "role": "master_admin", "name": "Admin", "permissions": permissions(),
		},
		"expiresAt": "2100-01-02T00:00:00.000Z",
	}
	if lastActivity {
		session["lastActivity"] = isoTime
	}
	return map[string]any{
		"success": true,
		"session": session,
		"features": map[string]any{
			"role": "master_admin", "roleName": "Master Administrator", "accessLevel": "all_features",
			"features": map[string]any{
				"aiAnalysis": true, "competitiveAnalysis": true, "geoOptimization": true, "advancedAudits": true,
				"systemMonitoring": true, "userManagement": true, "billingAccess": true, "whiteLabel": true,
				"apiAccess": "unlimited", "exportFormats": "all",
			},
		},
		"requestId": requestID,
	}
}

func userRecord() map[string]any {
	return map[string]any{
		"username": "alice_1", "role": "staff_tester", "name": "Alice", "active": true,
		"createdAt": isoTime, "updatedAt": "2100-01-01T00:05:00.000Z",
	}
}

func alert() map[string]any {
	return map[string]any{
		"id": alertID, "rule": "error_rate", "level": "warning", "message": "Error rate 7.50% over 5%",
		"state": "firing", "timestamp": epochMs - 60000, "acknowledged": false,
		"metadata": map[string]any{"value": 7.5, "threshold": 5, "windowStart": epochMs - 60000, "breachedWindows": 1},
	}
}

func overview() map[string]any {
	return map[string]any{
		"overview": map[string]any{"status": "healthy", "healthScore": 100, "uptime": "99.95%", "lastUpdate": isoTime},
		"traffic":  map[string]any{"requestsPerMinute": 42, "totalRequests": 1234, "errorRate": 0.5, "activeUsers": 1.25},
		"performance": map[string]any{
			"averageResponseTime": 12.34, "cpuUsage": nil, "memoryUsage": 21, "diskUsage": nil,
		},
		"alerts":         []any{alert()},
		"processingTime": "3ms",
		"requestId":      requestID,
	}
}

func metricsAnswer() map[string]any {
	return map[string]any{
		"timestamp": epochMs,
		"requests":  map[string]any{"total": 1234, "successful": 1200, "failed": 4, "rate": 42},
		"performance": map[string]any{
			"averageResponseTime": 12.34, "slowQueries": 0, "errorRate": 0, "availability": 99.67,
		},
		"resources": map[string]any{
			"memoryUsage": 0.21, "cpuLoad": nil, "activeConnections": 1.25, "diskUsage": nil, "networkIO": nil,
		},
		"traffic":        map[string]any{"currentLoad": 0.04, "peakLoad": 0.3, "throttledRequests": 30},
		"processingTime": "5ms",
		"requestId":      requestID,
	}
}

func history(hours int) map[string]any {
	data := make([]any, 0, hours*60)
	for i := 0; i < hours*60; i++ {
		data = append(data, map[string]any{
			"timestamp": epochMs - int64(hours*60-i)*60000, "requestRate": i % 7, "errorRate": 0,
			"averageResponseTime": 10.5, "cpuLoad": nil, "memoryUsage": nil,
		})
	}
	return map[string]any{
		"timeRange": strconv.Itoa(hours) + " hour(s)", "dataPoints": len(data), "data": data,
		"source": "dynamodb", "timestamp": epochMs, "processingTime": "17ms", "requestId": requestID,
	}
}

func trafficStatus() map[string]any {
	return map[string]any{
		"status": "operational",
		"systemLoad": map[string]any{
			"currentLoad": 0.05, "cpuLoad": nil, "memoryUsage": nil, "measuredLoad": 0.05, "overrideLoad": 0,
			"requestsLastMinute": 50, "admittedLastMinute": 48, "capacityRpm": 1000, "activeConnections": 0.4,
			"overrideConnections": 0, "simulateLoad": false, "simulationEnabled": false, "isOverloaded": false,
			"timestamp": "2100-01-01T00:00:00Z",
		},
		"rateLimit":      map[string]any{"limit": 100, "window": 60000, "threshold": 0.8},
		"processingTime": "1ms",
		"requestId":      requestID,
		"timestamp":      "2100-01-01T00:00:00.5Z",
	}
}

// mutate returns a deep copy of body changed by fn.
func mutate(t testing.TB, body map[string]any, fn func(m map[string]any)) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(jsonBody(t, body)), &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	return m
}

// at walks a dotted path of objects.
func at(m map[string]any, path string) map[string]any {
	for _, k := range strings.Split(path, ".") {
		m = m[k].(map[string]any)
	}
	return m
}

const (
	sessionCookie = "zenith_session=" + token + "; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=86400"
	deviceCookie  = "zenith_device=v1.YWRtaW4.4102444800.c2lnbmF0dXJl; HttpOnly; Secure; SameSite=Strict; Path=/api/auth; Max-Age=31536000"
	clearCookie   = "zenith_session=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0"
)
