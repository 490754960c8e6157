package authapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/authapi"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// deviceCookie returns the value of the zenith_device cookie a login set ("" when none).
func deviceCookie(res apitest.Response) (value, header string) {
	for _, c := range res.Cookies {
		if v, ok := strings.CutPrefix(c, "zenith_device="); ok {
			value, _, _ = strings.Cut(v, ";")
			return value, c
		}
	}
	return "", ""
}

func loginFrom(t testing.TB, username, password, ip string, cookies ...string) apitest.Request {
	req := loginReq(t, username, password)
	req.SourceIP = ip
	req.Cookies = cookies
	return req
}

// TestDeviceCookieDefeatsTargetedLockout (finding 1): 50 failed logins for a
// username from 11 addresses within 15 minutes trip the username-wide limit;
// the owner's right password from a fresh address is still accepted with the
// device cookie of an earlier login, and refused without it, so distributed
// guessing stays capped while the owner is not locked out.
func TestDeviceCookieDefeatsTargetedLockout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	res := e.do(t, loginFrom(t, masterName, e.masterPassword, "198.51.100.20"))
	if res.Status != 200 {
		t.Fatalf("owner login: %d %s", res.Status, res.Raw)
	}
	device, header := deviceCookie(res)
	if device == "" {
		t.Errorf("login set no zenith_device cookie: %v", res.Cookies)
	} else {
		for _, attr := range []string{"; HttpOnly", "; Secure", "; SameSite=Strict", "; Path=/api/auth", "; Max-Age=2592000"} {
			if !strings.Contains(header, attr) {
				t.Errorf("device cookie %q lacks %q", header, attr)
			}
		}
		if strings.Contains(strings.ToLower(device), strings.ToLower(masterName)) {
			t.Errorf("device cookie names its user: %q", device)
		}
	}
	// Another user's device cookie is no use for this username.
	admin := e.login(t, masterName, e.masterPassword)
	pw := apitest.RandomPassword(t)
	e.createUser(t, admin, "bystander", pw, users.RoleStaffTester)
	other, _ := deviceCookie(e.do(t, loginFrom(t, "bystander", pw, "198.51.100.21")))

	for i := 0; i < 50; i++ {
		ip := fmt.Sprintf("203.0.113.%d", i%11+1)
		e.clock.Advance(10 * time.Second) // 50 failures in a little over 8 minutes
		if res := e.do(t, loginFrom(t, masterName, "wrong-password!", ip)); res.Status != 401 {
			t.Fatalf("failure %d from %s: %d %s", i+1, ip, res.Status, res.Raw)
		}
	}
	with := e.do(t, loginFrom(t, masterName, e.masterPassword, "192.0.2.77", "zenith_device="+device))
	if with.Status != 200 {
		t.Errorf("owner with the device cookie from a fresh address: %d %s (Retry-After %s)", with.Status, with.Raw, with.Headers["Retry-After"])
	}
	without := e.do(t, loginFrom(t, masterName, e.masterPassword, "192.0.2.78"))
	if without.Status != 429 || without.Str("code") != "TOO_MANY_ATTEMPTS" {
		t.Errorf("fresh address without a device cookie: %d %s", without.Status, without.Raw)
	}
	for name, c := range map[string]string{
		"another user's cookie": "zenith_device=" + other,
		"a tampered cookie":     "zenith_device=" + flipLast(device),
		"garbage":               "zenith_device=" + strings.Repeat("x", 300),
	} {
		if res := e.do(t, loginFrom(t, masterName, e.masterPassword, "192.0.2.79", c)); res.Status != 429 {
			t.Errorf("%s: %d %s, want 429", name, res.Status, res.Raw)
		}
	}
	if t.Failed() {
		return
	}
	// A stolen device cookie does not lift the cap for a distributed guesser:
	// the device has its own lock, 5 failures from anywhere.
	fresh, _ := deviceCookie(with)
	for i := 0; i < 5; i++ {
		res := e.do(t, loginFrom(t, masterName, "wrong-password!", fmt.Sprintf("192.0.2.%d", 100+i), "zenith_device="+fresh))
		if res.Status != 401 {
			t.Fatalf("guess %d with the device cookie: %d %s", i+1, res.Status, res.Raw)
		}
	}
	if res := e.do(t, loginFrom(t, masterName, e.masterPassword, "192.0.2.120", "zenith_device="+fresh)); res.Status != 429 {
		t.Fatalf("device past its own lock threshold: %d %s", res.Status, res.Raw)
	}
}

func flipLast(s string) string {
	if s == "" {
		return "x"
	}
	return s[:len(s)-1] + flip(s[len(s)-1])
}

// TestLockoutCurveStaysAtCap (finding 2): one (username, address) pair that
// keeps guessing, waiting out each lock exactly, gets about 4 guesses an
// hour once the lock has reached its 15 min cap, hour after hour.
func TestLockoutCurveStaysAtCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ip = "203.0.113.66"
	start := e.clock.Now()
	perHour := map[int]int{}
	for e.clock.Now().Sub(start) < 5*time.Hour {
		res := e.do(t, loginFrom(t, "ghost_curve", "wrong-password!", ip))
		switch res.Status {
		case 401:
			perHour[int(e.clock.Now().Sub(start)/time.Hour)]++
			e.clock.Advance(time.Second)
		case 429:
			ra, err := strconv.Atoi(res.Headers["Retry-After"])
			if err != nil || ra < 1 {
				t.Fatalf("Retry-After = %q", res.Headers["Retry-After"])
			}
			e.clock.Advance(time.Duration(ra) * time.Second)
		default:
			t.Fatalf("status %d %s", res.Status, res.Raw)
		}
	}
	t.Logf("guesses per hour: %v", perHour)
	for h := 1; h < 5; h++ { // the first hour holds the climb to the cap
		if perHour[h] > 5 {
			t.Errorf("hour %d: %d guesses at the cap, want about 4", h+1, perHour[h])
		}
	}
}

// TestLoginCSRF (finding 3): an unsafe request carrying a foreign Origin is
// refused whatever its credentials, login included; no Origin (a
// non-browser client) is unaffected, whatever its Content-Type.
func TestLoginCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	login := apitest.JSON(t, map[string]any{"action": "login", "username": masterName, "password": e.masterPassword})
	tok := e.login(t, masterName, e.masterPassword)
	cases := []struct {
		name    string
		body    string
		headers map[string]string
		status  int
	}{
		{"login, foreign origin", login, map[string]string{"origin": "https://evil.example"}, 403},
		{"login, text/plain form, foreign origin", login, map[string]string{"origin": "https://evil.example", "content-type": "text/plain"}, 403},
		{"login, null origin", login, map[string]string{"origin": "null"}, 403},
		{"validate with a bearer token, foreign origin", `{"action":"validate"}`, map[string]string{"origin": "https://evil.example", "authorization": "Bearer " + tok}, 403},
		{"login, allowed origin", login, map[string]string{"origin": allowedOrigin}, 200},
		{"login, allowed origin with a trailing slash", login, map[string]string{"origin": allowedOrigin + "/"}, 200},
		{"login, no origin", login, nil, 200},
		{"login, no origin, text/plain", login, map[string]string{"content-type": "text/plain"}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := e.do(t, apitest.Request{Method: http.MethodPost, Path: "/api/auth", Body: tc.body, Headers: tc.headers})
			if res.Status != tc.status {
				t.Fatalf("%d %s, want %d", res.Status, res.Raw, tc.status)
			}
			if tc.status == 403 {
				if res.Str("code") != "CSRF_REJECTED" {
					t.Fatalf("code %s", res.Str("code"))
				}
				if len(res.Cookies) != 0 {
					t.Fatalf("a refused login set cookies: %v", res.Cookies)
				}
			}
		})
	}
	res := e.do(t, apitest.Request{Method: http.MethodPost, Path: "/api/auth/users", Headers: map[string]string{"origin": "https://evil.example", "authorization": "Bearer " + tok},
		Body: apitest.JSON(t, map[string]any{"username": "csrf_made", "password": apitest.RandomPassword(t), "role": "staff_tester"})})
	if res.Status != 403 || res.Str("code") != "CSRF_REJECTED" {
		t.Fatalf("staff create with a bearer token and a foreign origin: %d %s", res.Status, res.Raw)
	}
}

// TestJSONFieldNamesExact (finding 4): field names match exactly and a
// duplicate key is refused, at the top level and nested.
func TestJSONFieldNamesExact(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pw := e.masterPassword
	tok := e.login(t, masterName, pw)
	cases := []struct {
		name    string
		path    string
		method  string
		body    string
		details []string
	}{
		{"login, other case", "/api/auth", http.MethodPost, fmt.Sprintf(`{"Action":"login","USERNAME":%q,"Password":%q}`, masterName, pw), []string{`unknown field "Action"`}},
		{"login, one field in other case", "/api/auth", http.MethodPost, fmt.Sprintf(`{"action":"login","username":%q,"passWord":%q}`, masterName, pw), []string{`unknown field "passWord"`}},
		{"login, duplicate username", "/api/auth", http.MethodPost, fmt.Sprintf(`{"action":"login","username":"nobody_here","username":%q,"password":%q}`, masterName, pw), []string{`duplicate field "username"`}},
		{"login, duplicate by escape", "/api/auth", http.MethodPost, fmt.Sprintf(`{"action":"login","username":%q,"password":%q,"\u0061ction":"validate"}`, masterName, pw), []string{`duplicate field "action"`}},
		{"create user, other case", "/api/auth/users", http.MethodPost, `{"username":"case_user","password":"long-enough-1","ROLE":"master_admin"}`, []string{`unknown field "ROLE"`}},
		{"update user, duplicate", "/api/auth/users/" + masterName, http.MethodPatch, `{"name":"a","name":"b"}`, []string{`duplicate field "name"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := e.do(t, apitest.Request{Method: tc.method, Path: tc.path, Body: tc.body, Headers: apitest.Bearer(tok)})
			checkError(t, res, 400, "VALIDATION_ERROR", tc.details)
		})
	}
}

// putRole writes a role item as an operator would edit the table.
func putRole(t testing.TB, e *testEnv, role users.Role) {
	t.Helper()
	item, err := attributevalue.MarshalMap(role)
	if err != nil {
		t.Fatal(err)
	}
	item["pk"] = &types.AttributeValueMemberS{Value: "role#" + role.ID}
	item["kind"] = &types.AttributeValueMemberS{Value: "role"}
	if _, err := e.env.Client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(e.env.Tables.Users), Item: item}); err != nil {
		t.Fatal(err)
	}
}

// TestRoleGrants (finding 5): userManagement alone cannot make or change a
// master_admin; the MASTER_USERNAME user cannot be deactivated, demoted or
// deleted; one's own password change needs the current password.
func TestRoleGrants(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	putRole(t, e, users.Role{ID: "user_admin", Name: "User Administrator", Access: "premium_features", UserManagement: true, APIAccess: "limited", ExportFormats: "standard"})
	master := e.login(t, masterName, e.masterPassword)
	uaPw, secondPw := apitest.RandomPassword(t), apitest.RandomPassword(t)
	e.createUser(t, master, "ua_1", uaPw, "user_admin")
	e.createUser(t, master, "second_admin", secondPw, users.RoleMasterAdmin)
	e.createUser(t, master, "staff_1", apitest.RandomPassword(t), users.RoleStaffTester)
	ua := e.login(t, "ua_1", uaPw)
	second := e.login(t, "second_admin", secondPw)

	type step struct {
		name   string
		token  string
		method string
		path   string
		body   map[string]any
		status int
		code   string
	}
	steps := []step{
		{"user admin grants master_admin on create", ua, http.MethodPost, "/api/auth/users", map[string]any{"username": "made_admin", "password": apitest.RandomPassword(t), "role": "master_admin"}, 403, "FORBIDDEN"},
		{"user admin promotes itself", ua, http.MethodPatch, "/api/auth/users/ua_1", map[string]any{"role": "master_admin"}, 403, "FORBIDDEN"},
		{"user admin promotes staff", ua, http.MethodPatch, "/api/auth/users/staff_1", map[string]any{"role": "master_admin"}, 403, "FORBIDDEN"},
		{"user admin renames another master_admin", ua, http.MethodPatch, "/api/auth/users/second_admin", map[string]any{"name": "Mallory"}, 403, "FORBIDDEN"},
		{"user admin resets a master_admin's password", ua, http.MethodPatch, "/api/auth/users/" + masterName, map[string]any{"password": apitest.RandomPassword(t)}, 403, "FORBIDDEN"},
		{"user admin deactivates the master user", ua, http.MethodPatch, "/api/auth/users/" + masterName, map[string]any{"active": false}, 403, "FORBIDDEN"},
		{"user admin deletes a master_admin", ua, http.MethodDelete, "/api/auth/users/second_admin", nil, 403, "FORBIDDEN"},
		{"user admin still manages staff", ua, http.MethodPatch, "/api/auth/users/staff_1", map[string]any{"name": "Staff One"}, 200, ""},
		{"master_admin demotes the master user", second, http.MethodPatch, "/api/auth/users/" + masterName, map[string]any{"role": "staff_tester"}, 409, "PROTECTED_USER"},
		{"master_admin deactivates the master user", second, http.MethodPatch, "/api/auth/users/" + masterName, map[string]any{"active": false}, 409, "PROTECTED_USER"},
		{"master_admin deletes the master user", second, http.MethodDelete, "/api/auth/users/" + masterName, nil, 409, "PROTECTED_USER"},
		{"the master user deactivates itself", master, http.MethodPatch, "/api/auth/users/" + strings.ToUpper(masterName), map[string]any{"active": false}, 409, "PROTECTED_USER"},
		{"own password without currentPassword", ua, http.MethodPatch, "/api/auth/users/ua_1", map[string]any{"password": apitest.RandomPassword(t)}, 400, "VALIDATION_ERROR"},
		{"own password with a wrong currentPassword", ua, http.MethodPatch, "/api/auth/users/ua_1", map[string]any{"password": apitest.RandomPassword(t), "currentPassword": "not-the-password"}, 401, "INVALID_CREDENTIALS"},
		{"master_admin renames the master user", second, http.MethodPatch, "/api/auth/users/" + masterName, map[string]any{"name": "Root"}, 200, ""},
		{"master_admin promotes staff", second, http.MethodPatch, "/api/auth/users/staff_1", map[string]any{"role": "master_admin"}, 200, ""},
		{"master_admin demotes another master_admin", master, http.MethodPatch, "/api/auth/users/staff_1", map[string]any{"role": "staff_tester"}, 200, ""},
		{"master_admin resets another user's password without currentPassword", master, http.MethodPatch, "/api/auth/users/staff_1", map[string]any{"password": apitest.RandomPassword(t)}, 200, ""},
	}
	for _, s := range steps {
		req := apitest.Request{Method: s.method, Path: s.path, Headers: apitest.Bearer(s.token)}
		if s.body != nil {
			req.Body = apitest.JSON(t, s.body)
		}
		res := e.do(t, req)
		if res.Status != s.status || (s.code != "" && res.Str("code") != s.code) {
			t.Errorf("%s: %d %s, want %d %s", s.name, res.Status, res.Raw, s.status, s.code)
		}
	}
	for _, name := range []string{masterName, "second_admin"} {
		if u, err := userOf(e, name); err != nil || u == nil || !u.Active || u.Role != users.RoleMasterAdmin {
			t.Errorf("%s after the refused changes: %+v %v", name, u, err)
		}
	}
	if u, _ := userOf(e, "ua_1"); u == nil || u.Role != "user_admin" {
		t.Errorf("ua_1 changed its own role: %+v", u)
	}
	// With the right current password the change goes through, and the new password works.
	newPw := apitest.RandomPassword(t)
	res := e.do(t, apitest.Request{Method: http.MethodPatch, Path: "/api/auth/users/ua_1", Headers: apitest.Bearer(ua),
		Body: apitest.JSON(t, map[string]any{"password": newPw, "currentPassword": uaPw})})
	if res.Status != 200 {
		t.Fatalf("own password with the right currentPassword: %d %s", res.Status, res.Raw)
	}
	e.login(t, "ua_1", newPw)
}

// cursorBits returns every cursor that differs from c in exactly one bit of
// its decoded bytes.
func cursorBits(t testing.TB, c string) []string {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		t.Fatalf("cursor %q is not base64url: %v", c, err)
	}
	var out []string
	for i := range raw {
		for b := 0; b < 8; b++ {
			edited := append([]byte(nil), raw...)
			edited[i] ^= 1 << b
			out = append(out, base64.RawURLEncoding.EncodeToString(edited))
		}
	}
	return out
}

// TestCursorsTamperEvident (finding 6): a user-list cursor edited by one
// bit, or issued under another deployment's key, is refused; the first and
// the untouched cursors work.
func TestCursorsTamperEvident(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	master := e.login(t, masterName, e.masterPassword)
	for _, n := range []string{"cur_a", "cur_b", "cur_c"} {
		e.createUser(t, master, n, apitest.RandomPassword(t), users.RoleStaffTester)
	}
	list := func(e *testEnv, tok, cursor string) apitest.Response {
		return e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/auth/users", Headers: apitest.Bearer(tok), Query: map[string]string{"limit": "1", "cursor": cursor}})
	}
	first := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/auth/users", Headers: apitest.Bearer(master), Query: map[string]string{"limit": "1"}})
	cursor := first.Str("cursor")
	if first.Status != 200 || cursor == "" {
		t.Fatalf("first page: %d %s", first.Status, first.Raw)
	}
	if res := list(e, master, cursor); res.Status != 200 {
		t.Fatalf("the cursor as issued: %d %s", res.Status, res.Raw)
	}
	if raw, _ := base64.RawURLEncoding.DecodeString(cursor); strings.Contains(string(raw), "user#") || strings.Contains(string(raw), "role#") || strings.Contains(string(raw), "meta#") {
		t.Errorf("cursor shows the table key: %q", raw)
	}
	accepted := 0
	for _, c := range cursorBits(t, cursor) {
		res := list(e, master, c)
		if res.Status != 400 || res.Str("code") != "VALIDATION_ERROR" {
			accepted++
			if accepted <= 3 {
				t.Errorf("one-bit edit accepted: %d %s", res.Status, res.Raw)
			}
		}
	}
	if accepted > 0 {
		t.Errorf("%d one-bit edits of the cursor were not refused", accepted)
	}
	// Another deployment (its own tables, so its own key) refuses this cursor.
	other := newEnv(t, nil)
	otherMaster := other.login(t, masterName, other.masterPassword)
	if res := list(other, otherMaster, cursor); res.Status != 400 || res.Str("code") != "VALIDATION_ERROR" {
		t.Errorf("another deployment's cursor: %d %s", res.Status, res.Raw)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestClientKeysNotReversible (finding 6): the limiter's and the lockout's
// keys are keyed hashes, so hashing candidate addresses and usernames (the
// whole IPv4 space is only 2^32 of them) finds none of them.
func TestClientKeysNotReversible(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ip = "198.51.100.44"
	res := e.do(t, loginFrom(t, "key_user", "wrong-password!", ip))
	if res.Status != 401 {
		t.Fatalf("failed login: %d %s", res.Status, res.Raw)
	}
	tok := e.login(t, masterName, e.masterPassword)
	e.validateStatus(t, tok)
	guesses := []string{
		sha256Hex("ip:" + ip), sha256Hex("u:" + strings.ToLower(masterName)),
		sha256Hex("zenith-login-pair|key_user|" + ip), sha256Hex("zenith-login-user|key_user"),
	}
	for _, table := range []string{e.env.Tables.RateLimits, e.env.Tables.LoginAttempts} {
		items := scanAll(t, e.env.Client, table)
		if len(items) == 0 {
			t.Fatalf("table %s is empty: nothing to check", table)
		}
		for _, it := range items {
			pk := it["pk"].(*types.AttributeValueMemberS).Value
			for _, g := range guesses {
				if strings.Contains(pk, g) {
					t.Errorf("table %s key %s is the plain SHA-256 of a client key", table, pk)
				}
			}
		}
	}
}

// TestConcurrentFirstStartsAgreeOnOneKey (finding 6): two instances that
// start together on fresh tables end with one deployment key: one meta#keys
// item, and a cursor issued by either is accepted by the other.
func TestConcurrentFirstStartsAgreeOnOneKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	_, other := e.start(t)
	var wg sync.WaitGroup
	tokens := make([]string, 2)
	for i, app := range []apitest.Handler{e.app.Handle, other.Handle} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := apitest.Do(t, app, loginReq(t, masterName, e.masterPassword).Event())
			tokens[i], _ = res.Get("session.id").(string)
		}()
	}
	wg.Wait()
	if tokens[0] == "" || tokens[1] == "" {
		t.Fatal("a concurrent first login failed")
	}
	keys := 0
	for _, it := range scanAll(t, e.env.Client, e.env.Tables.Users) {
		if it["pk"].(*types.AttributeValueMemberS).Value == "meta#keys" {
			keys++
		}
	}
	if keys != 1 {
		t.Fatalf("%d meta#keys items, want one", keys)
	}
	e.createUser(t, tokens[0], "agree_a", apitest.RandomPassword(t), users.RoleStaffTester)
	page := e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/auth/users", Headers: apitest.Bearer(tokens[0]), Query: map[string]string{"limit": "1"}})
	res := apitest.Do(t, other.Handle, apitest.Request{Method: http.MethodGet, Path: "/api/auth/users", Headers: apitest.Bearer(tokens[1]), Query: map[string]string{"limit": "1", "cursor": page.Str("cursor")}}.Event())
	if res.Status != 200 {
		t.Fatalf("the other instance refused the cursor: %d %s", res.Status, res.Raw)
	}
}

// TestColdStartDuringOutage (finding 7): the auth function starts while
// DynamoDB refuses connections, answers 503 SERVICE_UNAVAILABLE with
// Retry-After on the routes that need the store, and once the store is back
// runs its bootstrap (roles, master user) and serves, without a restart.
func TestColdStartDuringOutage(t *testing.T) {
	t.Parallel()
	password := apitest.RandomPassword(t)
	env := dynamotest.New(t, "auth", baseOverrides(password))
	proxy, err := dbproxy.New(env.Config.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	if err := proxy.SetFault(dbproxy.Fault{Kind: dbproxy.Refuse}); err != nil {
		t.Fatal(err)
	}
	cfg := env.Config
	cfg.DynamoDBEndpoint = proxy.URL()
	fake := clock.NewFake(apitest.Epoch)
	ctx := context.Background()
	deps, err := platform.New(ctx, cfg, platform.WithClock(fake), platform.WithLogger(discardLogger()), platform.WithDynamoDBOptions(func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }))
	if err != nil {
		t.Fatal(err)
	}
	app, err := authapi.New(ctx, deps)
	if err != nil {
		t.Fatalf("auth did not start during the outage: %v", err)
	}
	forged, err := sessions.NewToken(strings.ToLower(masterName))
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []apitest.Request{
		loginReq(t, masterName, password),
		{Method: http.MethodGet, Path: "/api/auth", Headers: apitest.Bearer(forged)},
		{Method: http.MethodPost, Path: "/api/auth", Body: `{"action":"validate","sessionId":"` + forged + `"}`},
		{Method: http.MethodGet, Path: "/api/auth/users", Headers: apitest.Bearer(forged)},
	} {
		fake.Advance(2 * time.Second) // past the breaker's cooldown: each request tries the store
		res := apitest.Do(t, app.Handle, req.Event())
		if res.Status != 503 || res.Str("code") != "SERVICE_UNAVAILABLE" || res.Headers["Retry-After"] == "" {
			t.Errorf("%s %s during the outage: %d %v %s", req.Method, req.Path, res.Status, res.Headers, res.Raw)
		}
	}
	// What needs no store still answers.
	if res := apitest.Do(t, app.Handle, apitest.Request{Method: http.MethodPost, Path: "/api/auth", Body: `{"action":"nope"}`}.Event()); res.Status != 400 {
		t.Errorf("bad action during the outage: %d %s", res.Status, res.Raw)
	}
	if err := proxy.ClearFault(dbproxy.Refuse); err != nil {
		t.Fatal(err)
	}
	fake.Advance(2 * time.Second)
	if res := apitest.Do(t, app.Handle, loginReq(t, masterName, password).Event()); res.Status != 200 {
		t.Fatalf("login once the store is back: %d %s", res.Status, res.Raw)
	}
}

// TestCurrentPasswordLockout (finding 5): a wrong currentPassword counts as
// a failed login, so a stolen session cannot guess the password at the API's
// rate, from however many addresses (the session has its own lock); and a
// distributed attack that trips the username-wide limit does not stop the
// session's owner from changing the password.
func TestCurrentPasswordLockout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	// The staff routes (a password change included) need userManagement.
	putRole(t, e, users.Role{ID: "user_admin", Name: "User Administrator", Access: "premium_features", UserManagement: true, APIAccess: "limited", ExportFormats: "standard"})
	master := e.login(t, masterName, e.masterPassword)
	pw := apitest.RandomPassword(t)
	e.createUser(t, master, "victim_1", pw, "user_admin")
	victim := e.login(t, "victim_1", pw)
	change := func(current, ip string) apitest.Response {
		return e.do(t, apitest.Request{Method: http.MethodPatch, Path: "/api/auth/users/victim_1", Headers: apitest.Bearer(victim), SourceIP: ip,
			Body: apitest.JSON(t, map[string]any{"password": apitest.RandomPassword(t), "currentPassword": current})})
	}
	// The username-wide limit tripped by guessers elsewhere.
	for i := 0; i < 50; i++ {
		e.do(t, loginFrom(t, "victim_1", "wrong-password!", fmt.Sprintf("203.0.113.%d", i%11+1)))
	}
	if res := e.do(t, loginFrom(t, "victim_1", pw, "192.0.2.200")); res.Status != 429 {
		t.Fatalf("the username-wide limit did not trip: %d", res.Status)
	}
	for i := 0; i < 5; i++ {
		if res := change("not-the-password", fmt.Sprintf("198.51.100.%d", 30+i)); res.Status != 401 || res.Str("code") != "INVALID_CREDENTIALS" {
			t.Fatalf("wrong current password %d: %d %s", i+1, res.Status, res.Raw)
		}
	}
	res := change(pw, "198.51.100.99")
	if res.Status != 429 || res.Str("code") != "TOO_MANY_ATTEMPTS" || res.Headers["Retry-After"] == "" {
		t.Fatalf("after 5 wrong current passwords from 5 addresses: %d %s", res.Status, res.Raw)
	}
	e.clock.Advance(time.Second)
	if res := change(pw, "198.51.100.99"); res.Status != 200 {
		t.Fatalf("the owner after the lock, during the username-wide limit: %d %s", res.Status, res.Raw)
	}
}
