package authapi_test

import (
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
)

var tokenPattern = regexp.MustCompile(`^session_[0-9]+_[a-zA-Z0-9]+$`)

func TestAuthValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	long := strings.Repeat("a", 51)
	tests := []struct {
		name    string
		body    string
		base64  bool
		status  int
		code    string
		details []string
	}{
		{"empty body", "", false, 400, "EMPTY_BODY", nil},
		{"blank body", "  \n ", false, 400, "EMPTY_BODY", nil},
		{"invalid json", `{"action":`, false, 400, "JSON_PARSE_ERROR", nil},
		{"array", `[1,2]`, false, 400, "INVALID_BODY_TYPE", nil},
		{"string", `"login"`, false, 400, "INVALID_BODY_TYPE", nil},
		{"missing action", `{"username":"someone"}`, false, 400, "MISSING_ACTION", nil},
		{"empty action", `{"action":""}`, false, 400, "MISSING_ACTION", nil},
		{"null action", `{"action":null}`, false, 400, "MISSING_ACTION", nil},
		{"unknown action", `{"action":"register"}`, false, 400, "INVALID_ACTION", nil},
		{"action case", `{"action":"LOGIN"}`, false, 400, "INVALID_ACTION", nil},
		{"action type", `{"action":5}`, false, 400, "VALIDATION_ERROR", []string{"action must be of type string"}},
		{"unknown field", `{"action":"login","username":"abc","password":"12345678","admin":true}`, false, 400, "VALIDATION_ERROR", []string{`unknown field "admin"`}},
		{"login nothing", `{"action":"login"}`, false, 400, "VALIDATION_ERROR", []string{"Username is required", "Password is required"}},
		{"username short", `{"action":"login","username":"ab","password":"12345678"}`, false, 400, "VALIDATION_ERROR", []string{"Username must be between 3 and 50 characters"}},
		{"username long", `{"action":"login","username":"` + long + `","password":"12345678"}`, false, 400, "VALIDATION_ERROR", []string{"Username must be between 3 and 50 characters"}},
		{"username chars", `{"action":"login","username":"bad-name","password":"12345678"}`, false, 400, "VALIDATION_ERROR", []string{"Username can only contain letters, numbers and underscores"}},
		{"password short", `{"action":"login","username":"someone","password":"1234567"}`, false, 400, "VALIDATION_ERROR", []string{"Password must be between 8 and 100 characters"}},
		{"password long", `{"action":"login","username":"someone","password":"` + strings.Repeat("p", 101) + `"}`, false, 400, "VALIDATION_ERROR", []string{"Password must be between 8 and 100 characters"}},
		{"password type", `{"action":"login","username":"someone","password":12345678}`, false, 400, "VALIDATION_ERROR", []string{"password must be of type string"}},
		{"session id short", `{"action":"validate","sessionId":"session_1"}`, false, 400, "VALIDATION_ERROR", []string{"Session ID must be between 10 and 200 characters"}},
		{"session id long", `{"action":"validate","sessionId":"session_1_` + strings.Repeat("a", 200) + `"}`, false, 400, "VALIDATION_ERROR", []string{"Session ID must be between 10 and 200 characters"}},
		{"session id format", `{"action":"validate","sessionId":"token_12345_abcdef"}`, false, 400, "VALIDATION_ERROR", []string{"Session ID format is invalid"}},
		{"session id chars", `{"action":"logout","sessionId":"session_123_abc-def"}`, false, 400, "VALIDATION_ERROR", []string{"Session ID format is invalid"}},
		{"session id empty", `{"action":"logout","sessionId":""}`, false, 400, "VALIDATION_ERROR", []string{"Session ID is required"}},
		{"login ignores empty session id", `{"action":"login","username":"ab","password":"12345678","sessionId":""}`, false, 400, "VALIDATION_ERROR", []string{"Username must be between 3 and 50 characters"}},
		{"logout no token", `{"action":"logout"}`, false, 400, "VALIDATION_ERROR", []string{"Session ID is required"}},
		{"validate no token", `{"action":"validate"}`, false, 400, "VALIDATION_ERROR", []string{"Session ID is required"}},
		{"base64 body", b64(`{"action":"nope"}`), true, 400, "INVALID_ACTION", nil},
		{"bad base64", "!!!", true, 400, "JSON_PARSE_ERROR", nil},
		{"too large", `{"action":"login","username":"` + strings.Repeat("a", 70000) + `"}`, false, 413, "PAYLOAD_TOO_LARGE", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.do(t, apitest.Request{Method: http.MethodPost, Path: "/api/auth", Body: tc.body, Base64: tc.base64})
			if res.Status != tc.status || res.Str("code") != tc.code {
				t.Fatalf("got %d %s, want %d %s: %s", res.Status, res.Str("code"), tc.status, tc.code, res.Raw)
			}
			if res.Body["success"] != false || res.Str("error") == "" || res.Str("requestId") == "" {
				t.Fatalf("not the standard error envelope: %s", res.Raw)
			}
			if tc.details != nil {
				got, _ := res.Body["details"].([]any)
				var gs []string
				for _, d := range got {
					gs = append(gs, d.(string))
				}
				if !reflect.DeepEqual(gs, tc.details) {
					t.Fatalf("details = %q, want %q", gs, tc.details)
				}
			}
		})
	}
	if n := e.events.count("failed_login"); n != 0 {
		t.Fatalf("validation errors counted %d failed logins", n)
	}
}

func TestRoutingErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tests := []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodPut, "/api/auth", 405, "METHOD_NOT_ALLOWED"},
		{http.MethodDelete, "/api/auth", 405, "METHOD_NOT_ALLOWED"},
		{http.MethodGet, "/api/auth/nothing", 404, "NOT_FOUND"},
		{http.MethodPut, "/api/auth/users/abc", 405, "METHOD_NOT_ALLOWED"},
		{http.MethodGet, "/api/auth/users", 401, "UNAUTHORIZED"},
		{http.MethodPost, "/api/auth/users", 401, "UNAUTHORIZED"},
		{http.MethodPatch, "/api/auth/users/abc", 401, "UNAUTHORIZED"},
		{http.MethodDelete, "/api/auth/users/abc", 401, "UNAUTHORIZED"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			res := e.do(t, apitest.Request{Method: tc.method, Path: tc.path})
			if res.Status != tc.status || res.Str("code") != tc.code {
				t.Fatalf("got %d %s, want %d %s", res.Status, res.Str("code"), tc.status, tc.code)
			}
		})
	}
}

func TestLoginResponse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	res := e.do(t, loginReq(t, masterName, e.masterPassword))
	if res.Status != 200 || res.Body["success"] != true {
		t.Fatalf("login: %d %s", res.Status, res.Raw)
	}
	tok, _ := res.Get("session.id").(string)
	if !tokenPattern.MatchString(tok) || len(tok) < 10 || len(tok) > 200 {
		t.Fatalf("token %q does not match the contract's format", tok)
	}
	if secret := tok[strings.LastIndexByte(tok, '_')+1:]; len(secret) < 43 {
		t.Fatalf("token secret part has %d base62 characters, fewer than 256 bits", len(secret))
	}
	wantUser := map[string]any{
		"username": masterName, "role": "master_admin", "name": "Master Administrator",
		"permissions": map[string]any{
			"name": "Master Administrator", "access": "all_features",
			"aiApis": true, "competitiveAnalysis": true, "geoOptimization": true, "advancedAudits": true, "systemMonitoring": true,
			"userManagement": true, "billingAccess": true, "whiteLabel": true, "trafficControl": true,
			"apiAccess": "unlimited", "exportFormats": "all",
		},
	}
	if got := res.Get("session.user"); !reflect.DeepEqual(got, wantUser) {
		t.Fatalf("session.user = %v\nwant %v", got, wantUser)
	}
	wantFeatures := map[string]any{
		"role": "master_admin", "roleName": "Master Administrator", "accessLevel": "all_features",
		"features": map[string]any{
			"aiAnalysis": true, "competitiveAnalysis": true, "geoOptimization": true, "advancedAudits": true,
			"systemMonitoring": true, "userManagement": true, "billingAccess": true, "whiteLabel": true,
			"apiAccess": "unlimited", "exportFormats": "all",
		},
	}
	if got := res.Body["features"]; !reflect.DeepEqual(got, wantFeatures) {
		t.Fatalf("features = %v\nwant %v", got, wantFeatures)
	}
	// Default SESSION_TTL (1 day) is the earlier expiry.
	if got, want := res.Get("session.expiresAt"), apitest.Epoch.Add(24*time.Hour).Format("2006-01-02T15:04:05.000Z"); got != want {
		t.Fatalf("expiresAt = %v, want %v", got, want)
	}
	if res.Get("session.lastActivity") != nil {
		t.Fatal("login carries lastActivity; only validate does")
	}
	wantCookie := "zenith_session=" + tok + "; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=604800"
	if len(res.Cookies) != 2 || res.Cookies[0] != wantCookie {
		t.Fatalf("cookies = %q, want %q and the device cookie", res.Cookies, wantCookie)
	}
	if device := regexp.MustCompile(`^zenith_device=1\.[A-Za-z0-9_-]{22}\.[0-9]+\.[A-Za-z0-9_-]{43}; HttpOnly; Secure; SameSite=Strict; Path=/api/auth; Max-Age=2592000$`); !device.MatchString(res.Cookies[1]) {
		t.Fatalf("device cookie = %q", res.Cookies[1])
	}
	if res.Headers["Content-Type"] != "application/json" || res.Headers["Cache-Control"] != "no-cache, no-store, must-revalidate" || res.Headers["X-Request-ID"] == "" {
		t.Fatalf("headers = %v", res.Headers)
	}
	if res.Str("requestId") != res.Headers["X-Request-ID"] {
		t.Fatal("requestId differs from X-Request-ID")
	}
	for _, leak := range []string{e.masterPassword, "argon2", "passwordHash"} {
		if strings.Contains(res.Raw, leak) {
			t.Fatalf("login response leaks %q", leak)
		}
	}
	// Usernames are case-insensitive.
	if res := e.do(t, loginReq(t, strings.ToUpper(masterName), e.masterPassword)); res.Status != 200 || res.Get("session.user.username") != masterName {
		t.Fatalf("upper-case login: %d %s", res.Status, res.Raw)
	}
	// Two logins give two different tokens.
	if tok2 := e.login(t, masterName, e.masterPassword); tok2 == tok {
		t.Fatal("login reused a token")
	}
}

func TestStaffTesterPermissions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	admin := e.login(t, masterName, e.masterPassword)
	pw := apitest.RandomPassword(t)
	e.createUser(t, admin, "tester_1", pw, "staff_tester")
	res := e.do(t, loginReq(t, "tester_1", pw))
	if res.Status != 200 {
		t.Fatalf("login: %d %s", res.Status, res.Raw)
	}
	want := map[string]any{
		"name": "Staff Tester", "access": "premium_features",
		"aiApis": true, "competitiveAnalysis": true, "geoOptimization": true, "advancedAudits": true, "systemMonitoring": true,
		"userManagement": false, "billingAccess": false, "whiteLabel": false, "trafficControl": false,
		"apiAccess": "limited", "exportFormats": "standard",
	}
	if got := res.Get("session.user.permissions"); !reflect.DeepEqual(got, want) {
		t.Fatalf("permissions = %v\nwant %v", got, want)
	}
	if res.Get("features.roleName") != "Staff Tester" || res.Get("features.accessLevel") != "premium_features" || res.Get("features.features.aiAnalysis") != true {
		t.Fatalf("features = %v", res.Body["features"])
	}
	tok, _ := res.Get("session.id").(string)
	if r := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/auth/users", Headers: apitest.Bearer(tok)}); r.Status != 403 || r.Str("code") != "FORBIDDEN" {
		t.Fatalf("staff tester listing users: %d %s", r.Status, r.Raw)
	}
}

func TestInvalidCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	wrong := e.do(t, loginReq(t, masterName, "not-the-password"))
	unknown := e.do(t, loginReq(t, "nobody_here", "not-the-password"))
	for _, res := range []apitest.Response{wrong, unknown} {
		if res.Status != 401 || res.Str("code") != "INVALID_CREDENTIALS" {
			t.Fatalf("got %d %s", res.Status, res.Raw)
		}
		if len(res.Cookies) != 0 {
			t.Fatal("failed login set a cookie")
		}
	}
	delete(wrong.Body, "requestId")
	delete(unknown.Body, "requestId")
	if !reflect.DeepEqual(wrong.Body, unknown.Body) {
		t.Fatalf("unknown user and wrong password answer differently: %v vs %v", wrong.Body, unknown.Body)
	}
	if n := e.events.count("failed_login"); n != 2 {
		t.Fatalf("failed_login counted %d times, want 2", n)
	}
	// An inactive user with the right password gets the same answer.
	admin := e.login(t, masterName, e.masterPassword)
	pw := apitest.RandomPassword(t)
	e.createUser(t, admin, "gone_user", pw, "staff_tester")
	if r := e.do(t, apitest.Request{Method: http.MethodDelete, Path: "/api/auth/users/gone_user", Headers: apitest.Bearer(admin)}); r.Status != 200 {
		t.Fatalf("deactivate: %d %s", r.Status, r.Raw)
	}
	inactive := e.do(t, loginReq(t, "gone_user", pw))
	delete(inactive.Body, "requestId")
	if inactive.Status != 401 || !reflect.DeepEqual(inactive.Body, wrong.Body) {
		t.Fatalf("inactive login: %d %v", inactive.Status, inactive.Body)
	}
}

func TestValidateAndLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok := e.login(t, masterName, e.masterPassword)
	e.clock.Advance(5 * time.Minute) // past the touch interval: lastActivity moves

	checkValid := func(t *testing.T, res apitest.Response, wantID string) {
		t.Helper()
		if res.Status != 200 || res.Body["success"] != true {
			t.Fatalf("validate: %d %s", res.Status, res.Raw)
		}
		if res.Get("session.id") != wantID {
			t.Fatalf("session.id = %v, want %v", res.Get("session.id"), wantID)
		}
		if res.Get("session.lastActivity") != apitest.Epoch.Add(5*time.Minute).Format("2006-01-02T15:04:05.000Z") {
			t.Fatalf("lastActivity = %v", res.Get("session.lastActivity"))
		}
		if res.Get("session.user.role") != "master_admin" || res.Get("features.features.aiAnalysis") != true {
			t.Fatalf("body = %s", res.Raw)
		}
	}
	post := func(body string, extra apitest.Request) apitest.Request {
		extra.Method, extra.Path, extra.Body = http.MethodPost, "/api/auth", body
		return extra
	}
	validateBody := apitest.JSON(t, map[string]any{"action": "validate", "sessionId": tok})
	t.Run("post body", func(t *testing.T) { checkValid(t, e.do(t, post(validateBody, apitest.Request{})), tok) })
	t.Run("post bearer", func(t *testing.T) {
		checkValid(t, e.do(t, post(`{"action":"validate"}`, apitest.Request{Headers: apitest.Bearer(tok)})), tok)
	})
	t.Run("body wins over bearer", func(t *testing.T) {
		res := e.do(t, post(validateBody, apitest.Request{Headers: apitest.Bearer("session_123456_doesnotexist")}))
		checkValid(t, res, tok)
		res = e.do(t, post(apitest.JSON(t, map[string]any{"action": "validate", "sessionId": "session_123456_doesnotexist"}), apitest.Request{Headers: apitest.Bearer(tok)}))
		if res.Status != 401 || res.Str("code") != "INVALID_SESSION" {
			t.Fatalf("body token should win: %d %s", res.Status, res.Raw)
		}
	})
	t.Run("empty body id falls back to bearer", func(t *testing.T) {
		checkValid(t, e.do(t, post(`{"action":"validate","sessionId":""}`, apitest.Request{Headers: apitest.Bearer(tok)})), tok)
	})
	t.Run("get bearer", func(t *testing.T) {
		checkValid(t, e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/auth", Headers: apitest.Bearer(tok)}), tok)
	})
	t.Run("get cookie shows the handle", func(t *testing.T) {
		res := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/auth", Cookies: []string{"zenith_session=" + tok}})
		if res.Status != 200 {
			t.Fatalf("%d %s", res.Status, res.Raw)
		}
		if id, _ := res.Get("session.id").(string); id == tok || len(id) != 16 {
			t.Fatalf("cookie-authenticated validate echoed %q", id)
		}
	})
	t.Run("get deprecated query", func(t *testing.T) {
		res := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/auth", Query: map[string]string{"sessionId": tok}})
		checkValid(t, res, tok)
		if res.Headers["Deprecation"] != "true" {
			t.Fatalf("headers = %v", res.Headers)
		}
	})
	t.Run("query token only on GET", func(t *testing.T) {
		res := e.do(t, apitest.Request{Method: http.MethodPost, Path: "/api/auth", Body: `{"action":"validate"}`, Query: map[string]string{"sessionId": tok}})
		if res.Status != 400 {
			t.Fatalf("%d %s", res.Status, res.Raw)
		}
	})
	t.Run("get no token", func(t *testing.T) {
		res := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/auth"})
		if res.Status != 401 || res.Str("code") != "INVALID_SESSION" {
			t.Fatalf("%d %s", res.Status, res.Raw)
		}
	})
	for name, bad := range map[string]string{
		"unknown":        "session_123456_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQR",
		"old format":     "session_1700000000000_k3j4h5g6",
		"tampered":       tok[:len(tok)-1] + flip(tok[len(tok)-1]),
		"other user":     "session_" + strings.Repeat("11", 5) + tok[strings.LastIndexByte(tok, '_'):],
		"not a token":    "garbage",
		"bearer garbage": "session_x",
	} {
		t.Run("invalid "+name, func(t *testing.T) {
			res := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/auth", Headers: apitest.Bearer(bad)})
			if res.Status != 401 || res.Str("code") != "INVALID_SESSION" {
				t.Fatalf("%d %s", res.Status, res.Raw)
			}
		})
	}

	t.Run("logout", func(t *testing.T) {
		res := e.do(t, post(apitest.JSON(t, map[string]any{"action": "logout", "sessionId": tok}), apitest.Request{}))
		if res.Status != 200 || res.Body["success"] != true || res.Str("message") != "Logged out successfully" || res.Str("code") != "SUCCESS" {
			t.Fatalf("logout: %d %s", res.Status, res.Raw)
		}
		if len(res.Cookies) != 1 || res.Cookies[0] != "zenith_session=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0" {
			t.Fatalf("logout cookies = %q", res.Cookies)
		}
		if s := e.validateStatus(t, tok); s != 401 {
			t.Fatalf("token still valid after logout: %d", s)
		}
		res = e.do(t, post(apitest.JSON(t, map[string]any{"action": "logout", "sessionId": tok}), apitest.Request{}))
		if res.Status != 200 || res.Body["success"] != false || res.Str("message") != "Session not found" || res.Str("code") != "SESSION_NOT_FOUND" {
			t.Fatalf("second logout: %d %s", res.Status, res.Raw)
		}
	})
	t.Run("logout with header token", func(t *testing.T) {
		tok2 := e.login(t, masterName, e.masterPassword)
		res := e.do(t, post(`{"action":"logout"}`, apitest.Request{Headers: apitest.Bearer(tok2)}))
		if res.Status != 200 || res.Body["success"] != true {
			t.Fatalf("logout: %d %s", res.Status, res.Raw)
		}
		if s := e.validateStatus(t, tok2); s != 401 {
			t.Fatalf("token still valid after logout: %d", s)
		}
	})
}

func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

func TestCookieCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok := e.login(t, masterName, e.masterPassword)
	cookie := []string{"zenith_session=" + tok}
	logout := `{"action":"logout"}`
	res := e.do(t, apitest.Request{Method: http.MethodPost, Path: "/api/auth", Body: logout, Cookies: cookie, Headers: map[string]string{"origin": "https://evil.example"}})
	if res.Status != 403 || res.Str("code") != "CSRF_REJECTED" {
		t.Fatalf("foreign origin: %d %s", res.Status, res.Raw)
	}
	res = e.do(t, apitest.Request{Method: http.MethodPost, Path: "/api/auth", Body: logout, Cookies: cookie})
	if res.Status != 403 || res.Str("code") != "CSRF_REJECTED" {
		t.Fatalf("no origin: %d %s", res.Status, res.Raw)
	}
	if s := e.validateStatus(t, tok); s != 200 {
		t.Fatalf("refused logout ended the session: %d", s)
	}
	res = e.do(t, apitest.Request{Method: http.MethodPost, Path: "/api/auth", Body: logout, Cookies: cookie, Headers: map[string]string{"origin": allowedOrigin}})
	if res.Status != 200 || res.Body["success"] != true {
		t.Fatalf("allowed origin: %d %s", res.Status, res.Raw)
	}
}
