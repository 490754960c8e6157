package authapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
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
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/lockout"
	"github.com/zenithfresh/zenith-serverless/shared/passwords"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// TestLockout: 5 failures from one IP lock that (username, IP) pair; the
// right password from that IP is refused until the lock ends, while the
// same user logs in from another IP.
func TestLockout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const attacker, home = "203.0.113.9", "198.51.100.20"
	fail := func(ip string) apitest.Response {
		req := loginReq(t, masterName, "wrong-password!")
		req.SourceIP = ip
		return e.do(t, req)
	}
	right := func(ip string) apitest.Response {
		req := loginReq(t, masterName, e.masterPassword)
		req.SourceIP = ip
		return e.do(t, req)
	}
	for i := 1; i <= 5; i++ {
		if res := fail(attacker); res.Status != 401 || res.Str("code") != "INVALID_CREDENTIALS" {
			t.Fatalf("failure %d: %d %s", i, res.Status, res.Raw)
		}
	}
	res := right(attacker)
	if res.Status != 429 || res.Str("code") != "TOO_MANY_ATTEMPTS" {
		t.Fatalf("locked pair with the right password: %d %s", res.Status, res.Raw)
	}
	if ra, err := strconv.Atoi(res.Headers["Retry-After"]); err != nil || ra < 1 {
		t.Fatalf("Retry-After = %q", res.Headers["Retry-After"])
	}
	failedBefore := e.events.count("failed_login")
	if res := fail(attacker); res.Status != 429 {
		t.Fatalf("locked pair with a wrong password: %d", res.Status)
	}
	if e.events.count("failed_login") != failedBefore {
		t.Fatal("a refused attempt was counted as a failure")
	}
	// Another address is not affected.
	if res := right(home); res.Status != 200 {
		t.Fatalf("login from another IP: %d %s", res.Status, res.Raw)
	}
	// The first lock is 1 s: just before it ends still refused, after it accepted.
	e.clock.Advance(999 * time.Millisecond)
	if res := right(attacker); res.Status != 429 {
		t.Fatalf("before the lock ended: %d", res.Status)
	}
	e.clock.Advance(2 * time.Millisecond)
	if res := right(attacker); res.Status != 200 {
		t.Fatalf("after the lock ended: %d %s", res.Status, res.Raw)
	}
	// The success reset the pair: 4 failures do not lock again.
	for i := 0; i < 4; i++ {
		fail(attacker)
	}
	if res := right(attacker); res.Status != 200 {
		t.Fatalf("after reset, 4 failures locked: %d", res.Status)
	}
}

// TestLockoutDoubles: each failure past the fifth doubles the lock, up to 15 min,
// and unknown usernames are tracked the same way.
func TestLockoutDoubles(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ip = "2001:db8:1:2:3:4:5:6"
	try := func(user string, ipAddr string) apitest.Response {
		req := loginReq(t, user, "wrong-password!")
		req.SourceIP = ipAddr
		return e.do(t, req)
	}
	for i := 0; i < 5; i++ {
		try("ghost_user", ip)
	}
	want := []int{1, 2, 4, 8}
	for _, w := range want {
		res := try("ghost_user", ip)
		if res.Status != 429 || res.Headers["Retry-After"] != strconv.Itoa(w) {
			t.Fatalf("want a %d s lock: %d Retry-After=%q", w, res.Status, res.Headers["Retry-After"])
		}
		e.clock.Advance(time.Duration(w) * time.Second)
		if res := try("ghost_user", ip); res.Status != 401 {
			t.Fatalf("after the %d s lock: %d", w, res.Status)
		}
	}
	// The same /64 is the same client; another /64 is not.
	if res := try("ghost_user", "2001:db8:1:2:ffff::1"); res.Status != 429 {
		t.Fatalf("same /64: %d", res.Status)
	}
	if res := try("ghost_user", "2001:db8:1:3::1"); res.Status != 401 {
		t.Fatalf("other /64: %d", res.Status)
	}
	// Counters expire 15 min after the last failure.
	e.clock.Advance(16 * time.Minute)
	for i := 0; i < 4; i++ {
		if res := try("ghost_user", ip); res.Status != 401 {
			t.Fatalf("after expiry, failure %d: %d", i+1, res.Status)
		}
	}
}

func TestLockoutCap(t *testing.T) {
	t.Parallel()
	p := lockout.DefaultPolicy
	if p.LockFor(4) != 0 || p.LockFor(5) != time.Second || p.LockFor(6) != 2*time.Second || p.LockFor(15) != 15*time.Minute || p.LockFor(100) != 15*time.Minute {
		t.Fatalf("lock schedule: %v %v %v %v", p.LockFor(5), p.LockFor(6), p.LockFor(15), p.LockFor(100))
	}
}

// TestRehashOnLogin: a hash with weaker parameters than configured is
// replaced at the next successful login, sessions untouched.
func TestRehashOnLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	weak := passwords.Params{Memory: 8 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	us := users.New(e.env.Client, e.env.Tables.Users, e.clock, nil)
	if err := us.Roles().Seed(ctx); err != nil { // no request has run the bootstrap yet
		t.Fatal(err)
	}
	us.SetPasswordParams(weak)
	pw := apitest.RandomPassword(t)
	if _, err := us.Create(ctx, users.Actor{Username: "test"}, users.NewUser{Username: "old_hash", Password: pw, Role: users.RoleStaffTester}); err != nil {
		t.Fatal(err)
	}
	before, _ := us.Get(ctx, "old_hash")
	if !strings.HasPrefix(before.PasswordHash, "$argon2id$v=19$m=8192,t=1,p=1$") {
		t.Fatalf("setup hash = %s", before.PasswordHash)
	}
	e.login(t, "old_hash", pw)
	after, _ := us.Get(ctx, "old_hash")
	if !strings.HasPrefix(after.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash not upgraded: %s", after.PasswordHash)
	}
	if after.SessionVersion != before.SessionVersion {
		t.Fatal("a rehash ended the user's sessions")
	}
	e.login(t, "old_hash", pw)
}

// TestRestartSurvival: a session created by one instance is valid in a new
// instance with a new client and empty caches.
func TestRestartSurvival(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok := e.login(t, masterName, e.masterPassword)
	_, app2 := e.start(t) // a new cold start on the same tables
	res := apitest.Do(t, app2.Handle, apitest.Request{Method: http.MethodGet, Path: "/api/auth", Headers: apitest.Bearer(tok)}.Event())
	if res.Status != 200 || res.Get("session.user.username") != masterName {
		t.Fatalf("after restart: %d %s", res.Status, res.Raw)
	}
}

// TestExpiryOnRead: idle- and absolute-expired sessions are rejected while
// their items still exist (TTL is decades away in real time).
func TestExpiryOnRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"SESSION_TTL": "3600", "SESSION_MAX_LIFETIME": "7200", "SESSION_TOUCH_INTERVAL": "60"})
	exists := func(tok string) bool {
		out, err := e.env.Client.GetItem(context.Background(), &dynamodb.GetItemInput{
			TableName: aws.String(e.env.Tables.Sessions), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: sessions.HashToken(tok)}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return out.Item != nil
	}
	t.Run("idle", func(t *testing.T) {
		tok := e.login(t, masterName, e.masterPassword)
		e.clock.Advance(59 * time.Minute)
		if s := e.validateStatus(t, tok); s != 200 {
			t.Fatalf("within idle timeout: %d", s)
		}
		e.clock.Advance(59 * time.Minute) // 59 min after the touch
		if s := e.validateStatus(t, tok); s != 200 {
			t.Fatalf("the touch did not slide the idle expiry: %d", s)
		}
		e.clock.Advance(60*time.Minute + time.Millisecond)
		if s := e.validateStatus(t, tok); s != 401 {
			t.Fatalf("idle-expired session accepted: %d", s)
		}
		if !exists(tok) {
			t.Fatal("item gone: the test would not prove the read-time check")
		}
		// The failed touch condition did not bring it back either.
		if s := e.validateStatus(t, tok); s != 401 {
			t.Fatalf("idle-expired session came back: %d", s)
		}
	})
	t.Run("absolute", func(t *testing.T) {
		tok := e.login(t, masterName, e.masterPassword)
		for _, step := range []time.Duration{30 * time.Minute, 30 * time.Minute, 30 * time.Minute, 29 * time.Minute} { // never idle
			e.clock.Advance(step)
			if s := e.validateStatus(t, tok); s != 200 {
				t.Fatalf("active session rejected: %d", s)
			}
		}
		e.clock.Advance(time.Minute) // exactly 2 h after login
		if s := e.validateStatus(t, tok); s != 401 {
			t.Fatalf("absolute-expired session accepted: %d", s)
		}
		if !exists(tok) {
			t.Fatal("item gone: the test would not prove the read-time check")
		}
	})
}

// TestConcurrentFirstStarts: 20 instances starting at once on empty tables,
// each answering a first login (which runs the lazy bootstrap), create
// exactly one master user, one copy of each role and one deployment key.
// Creation is proved exactly-once, not just "one item at the end" (which a
// blind put would also leave): exactly one instance writes the user.created
// audit line, and the stored item is the one that instance wrote. Each
// instance has its own logger and its own clock, 1 ms apart, so the stored
// createdAt names the instance whose write is in the table.
func TestConcurrentFirstStarts(t *testing.T) {
	t.Parallel()
	password := apitest.RandomPassword(t)
	env := dynamotest.New(t, "auth", baseOverrides(password))
	fake := clock.NewFake(apitest.Epoch)
	const starts = 20
	logs := make([]*apitest.LogBuffer, starts)
	var wg sync.WaitGroup
	errs := make(chan error, starts)
	for i := 0; i < starts; i++ {
		logs[i] = &apitest.LogBuffer{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			logger := slog.New(slog.NewJSONHandler(logs[i], nil))
			own := clock.NewFake(apitest.Epoch.Add(time.Duration(i) * time.Millisecond))
			deps, err := platform.New(ctx, env.Config, platform.WithClock(own), platform.WithLogger(logger))
			if err != nil {
				errs <- err
				return
			}
			app, err := authapi.New(ctx, deps)
			if err != nil {
				errs <- err
				return
			}
			out, err := app.Handle(ctx, loginReq(t, masterName, password).Event())
			if err != nil || out.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("first login: %d %v %s", out.StatusCode, err, out.Body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("start failed: %v", err)
	}
	creator := -1
	for i, l := range logs {
		for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
			var rec struct {
				Audit  bool   `json:"audit"`
				Event  string `json:"event"`
				Target string `json:"target"`
			}
			if line == "" || json.Unmarshal([]byte(line), &rec) != nil || rec.Event != "user.created" {
				continue
			}
			if !rec.Audit || rec.Target != strings.ToLower(masterName) {
				t.Fatalf("start %d: malformed user.created line %s", i, line)
			}
			if creator >= 0 {
				t.Fatalf("starts %d and %d both reported creating the master user", creator, i)
			}
			creator = i
		}
	}
	if creator < 0 {
		t.Fatal("no start reported creating the master user")
	}
	items := scanAll(t, env.Client, env.Tables.Users)
	kinds := map[string]int{}
	for _, it := range items {
		pk := it["pk"].(*types.AttributeValueMemberS).Value
		kinds[pk[:strings.IndexByte(pk, '#')]]++
	}
	if kinds["user"] != 1 || kinds["role"] != 2 || kinds["meta"] != 2 {
		t.Fatalf("items by kind = %v, want 1 user, 2 roles, the admin set and the key", kinds)
	}
	var admins struct {
		Admins []string `dynamodbav:"admins,stringset"`
	}
	for _, it := range items {
		if it["pk"].(*types.AttributeValueMemberS).Value == "meta#admins" {
			if err := attributevalue.UnmarshalMap(it, &admins); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(admins.Admins) != 1 || admins.Admins[0] != strings.ToLower(masterName) {
		t.Fatalf("admin set = %v", admins.Admins)
	}
	stored, err := users.New(env.Client, env.Tables.Users, fake, nil).Get(context.Background(), masterName)
	if err != nil || stored == nil {
		t.Fatalf("master user: %v %v", stored, err)
	}
	if want := apitest.Epoch.Add(time.Duration(creator) * time.Millisecond).UnixMilli(); stored.CreatedAt != want || stored.Rev != 1 {
		t.Fatalf("stored user has createdAt %d rev %d, want %d rev 1: another start overwrote the creator's write", stored.CreatedAt, stored.Rev, want)
	}
	// The created user logs in with the configured password.
	deps, err := platform.New(context.Background(), env.Config, platform.WithClock(fake), platform.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	app, err := authapi.New(context.Background(), deps)
	if err != nil {
		t.Fatal(err)
	}
	if res := apitest.Do(t, app.Handle, loginReq(t, masterName, password).Event()); res.Status != 200 {
		t.Fatalf("login after concurrent starts: %d %s", res.Status, res.Raw)
	}
}

// TestStartErrors: the auth function refuses to start without a valid
// master user configuration, naming the variable.
func TestStartErrors(t *testing.T) {
	t.Parallel()
	env := dynamotest.New(t, "auth", nil)
	tests := []struct {
		name string
		vars map[string]string
		want []string
	}{
		{"nothing", map[string]string{}, []string{"MASTER_USERNAME is required", "MASTER_PASSWORD or MASTER_PASSWORD_SECRET is required"}},
		{"no password", map[string]string{"MASTER_USERNAME": "admin_x"}, []string{"MASTER_PASSWORD or MASTER_PASSWORD_SECRET is required"}},
		{"no username", map[string]string{"MASTER_PASSWORD": "long-enough-1"}, []string{"MASTER_USERNAME is required"}},
		{"bad username", map[string]string{"MASTER_USERNAME": "ad min", "MASTER_PASSWORD": "long-enough-1"}, []string{"MASTER_USERNAME is invalid", "letters, numbers and underscores"}},
		{"short username", map[string]string{"MASTER_USERNAME": "ad", "MASTER_PASSWORD": "long-enough-1"}, []string{"MASTER_USERNAME is invalid"}},
		{"short password", map[string]string{"MASTER_USERNAME": "admin_x", "MASTER_PASSWORD": "short"}, []string{"MASTER_PASSWORD is invalid", "between 8 and 100"}},
		{"both sources", map[string]string{"MASTER_USERNAME": "admin_x", "MASTER_PASSWORD": "long-enough-1", "MASTER_PASSWORD_SECRET": "zenith/master"}, []string{"both set"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := env.Config
			cfg.MasterUsername, cfg.MasterPassword, cfg.MasterPasswordSecret = tc.vars["MASTER_USERNAME"], tc.vars["MASTER_PASSWORD"], tc.vars["MASTER_PASSWORD_SECRET"]
			deps, err := platform.New(context.Background(), cfg, platform.WithLogger(discardLogger()))
			if err != nil {
				t.Fatal(err)
			}
			_, err = authapi.New(context.Background(), deps)
			if err == nil {
				t.Fatal("start succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
			if tc.vars["MASTER_PASSWORD"] != "" && strings.Contains(err.Error(), tc.vars["MASTER_PASSWORD"]) {
				t.Fatal("the error echoes the password")
			}
		})
	}
	// Nothing was written by the failed starts.
	if items := scanAll(t, env.Client, env.Tables.Users); len(items) != 0 {
		t.Fatalf("failed starts wrote %d items", len(items))
	}
}

// TestNoSecretsAtRest scans every table after logins, failures and user
// changes: no password or token appears, only PHC hashes and SHA-256 keys.
func TestNoSecretsAtRest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	admin := e.login(t, masterName, e.masterPassword)
	pw := apitest.RandomPassword(t)
	e.createUser(t, admin, "scan_user", pw, "staff_tester")
	userTok := e.login(t, "scan_user", pw)
	newPw := apitest.RandomPassword(t)
	if r := e.do(t, apitest.Request{Method: http.MethodPatch, Path: "/api/auth/users/scan_user", Headers: apitest.Bearer(admin), Body: apitest.JSON(t, map[string]any{"password": newPw})}); r.Status != 200 {
		t.Fatalf("patch: %d", r.Status)
	}
	e.login(t, "scan_user", newPw)
	wrong := "typo-" + apitest.RandomPassword(t)
	e.do(t, loginReq(t, "scan_user", wrong))
	e.do(t, loginReq(t, "no_such_user", wrong))
	e.validateStatus(t, admin)

	secrets := []string{e.masterPassword, pw, newPw, wrong, admin, userTok}
	for _, sec := range []string{admin, userTok} {
		secrets = append(secrets, sec[strings.LastIndexByte(sec, '_')+1:]) // the secret part alone
	}
	phc := regexp.MustCompile(`^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$`)
	hexKey := regexp.MustCompile(`^[0-9a-f]{64}$`)
	counterKey := regexp.MustCompile(`^(pair|user|device)#[0-9a-f]{64}$`)
	sessionCountKey := regexp.MustCompile(`^count#(meta|[mhd]#[0-9]+)$`)
	bucketKey := regexp.MustCompile(`^(api|frontdoor)#[0-9a-f]{64}$`)
	cfg := e.env.Tables
	for _, table := range []string{cfg.Users, cfg.Sessions, cfg.LoginAttempts, cfg.RateLimits, cfg.Metrics, cfg.Alerts, cfg.LoadOverrides} {
		items := scanAll(t, e.env.Client, table)
		for _, it := range items {
			var m map[string]any
			if err := attributevalue.UnmarshalMap(it, &m); err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(m)
			for _, sec := range secrets {
				if strings.Contains(string(raw), sec) {
					t.Fatalf("table %s holds a secret in %s", table, raw)
				}
			}
			switch table {
			case cfg.Users:
				if h, ok := m["passwordHash"].(string); ok && !phc.MatchString(h) {
					t.Fatalf("user hash is not PHC argon2id: %s", h)
				}
			case cfg.Sessions:
				pk, _ := m["pk"].(string)
				if sessionCountKey.MatchString(pk) { // a session counter: numbers only
					for k, v := range m {
						if _, num := v.(float64); k != "pk" && !num {
							t.Fatalf("session counter %s holds %s = %v", pk, k, v)
						}
					}
					break
				}
				if !hexKey.MatchString(pk) {
					t.Fatalf("session key is not a SHA-256: %s", pk)
				}
			case cfg.LoginAttempts:
				if pk, _ := m["pk"].(string); !counterKey.MatchString(pk) {
					t.Fatalf("login counter key is not hashed: %s", pk)
				}
				if strings.Contains(string(raw), "198.51.100.7") || strings.Contains(string(raw), "scan_user") {
					t.Fatalf("login counter holds an IP or username: %s", raw)
				}
			case cfg.RateLimits:
				pk, _ := m["pk"].(string)
				if !bucketKey.MatchString(pk) || strings.Contains(string(raw), "198.51.100.7") || strings.Contains(string(raw), "scan_user") {
					t.Fatalf("rate-limit item holds an IP or username, or an unhashed key: %s", raw)
				}
				// Keyed hashes: the plain SHA-256 of a client key (what hashing
				// every IPv4 address would find) is none of them.
				for _, plain := range []string{"ip:198.51.100.7", "u:scan_user", "u:" + strings.ToLower(masterName)} {
					if strings.HasSuffix(pk, sha256Hex(plain)) {
						t.Fatalf("rate-limit key %s is the plain SHA-256 of %q", pk, plain)
					}
				}
			}
		}
	}
	// Nor do the logs.
	logs := e.logs.String()
	for _, sec := range secrets {
		if strings.Contains(logs, sec) {
			t.Fatal("a password or token was logged")
		}
	}
	if !strings.Contains(logs, `"event":"user.created"`) || !strings.Contains(logs, `"event":"user.updated"`) {
		t.Fatal("user changes left no audit line")
	}
}

// TestDynamoDBCalls pins the number of DynamoDB calls of the identity paths
// (the limiter's and recorder's calls are counted separately by op name).
func TestDynamoDBCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"SESSION_TOUCH_INTERVAL": "60"})
	// Off the day boundary of the epoch: the touch then moves the session's
	// count within one hour, one counter write (docs/identity.md).
	e.clock.Advance(90 * time.Minute)
	tok := e.login(t, masterName, e.masterPassword) // warms the role cache and the pair trust
	ops := []string{"BatchGetItem", "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "TransactWriteItems"}
	identity := func() map[string]int {
		m := map[string]int{}
		for _, op := range ops {
			if n := e.calls.Count(op); n > 0 {
				m[op] = n
			}
		}
		return m
	}
	mgr := e.deps.Sessions
	ctx := context.Background()
	e.calls.Reset()
	if s, _, err := mgr.Validate(ctx, tok); err != nil || s == nil {
		t.Fatalf("validate: %v", err)
	}
	if got := identity(); fmt.Sprint(got) != "map[BatchGetItem:1]" {
		t.Fatalf("validate within the touch interval: %v, want one BatchGetItem", got)
	}
	e.clock.Advance(61 * time.Second)
	e.calls.Reset()
	if s, _, err := mgr.Validate(ctx, tok); err != nil || s == nil {
		t.Fatalf("validate: %v", err)
	}
	if got := identity(); fmt.Sprint(got) != "map[BatchGetItem:1 UpdateItem:2]" {
		t.Fatalf("validate after the touch interval: %v, want one BatchGetItem and two UpdateItems (the touch and its counter move, together)", got)
	}
	e.calls.Reset()
	mgr.Validate(ctx, "session_1700000000000_abcdef") // not one of ours: no call
	if e.calls.Total() != 0 {
		t.Fatalf("a foreign token cost %d calls", e.calls.Total())
	}
	e.calls.Reset()
	if ok, err := mgr.Logout(ctx, tok); err != nil || !ok {
		t.Fatalf("logout: %v %v", ok, err)
	}
	if got := identity(); fmt.Sprint(got) != "map[DeleteItem:1 GetItem:1 UpdateItem:3]" {
		t.Fatalf("logout: %v, want one DeleteItem, then together one GetItem (the user's version) and three UpdateItems (its minute, hour and day counters)", got)
	}
	// A session resolved in this request (header or cookie token) needs no user read.
	tok2 := e.login(t, masterName, e.masterPassword)
	s2, _, _ := mgr.Validate(ctx, tok2)
	e.calls.Reset()
	if ok, err := mgr.RevokeValidated(ctx, s2); err != nil || !ok {
		t.Fatalf("revoke validated: %v %v", ok, err)
	}
	if got := identity(); fmt.Sprint(got) != "map[DeleteItem:1 UpdateItem:3]" {
		t.Fatalf("logout of a resolved session: %v, want one DeleteItem and, together, three UpdateItems (its minute, hour and day counters)", got)
	}
	// A dead token: one read the first time on an instance, none after.
	e.calls.Reset()
	for i := 0; i < 3; i++ {
		if s, _, _ := mgr.Validate(ctx, tok); s != nil {
			t.Fatal("logged-out session accepted")
		}
	}
	if got := identity(); len(got) != 0 {
		t.Fatalf("a token logged out on this instance: %v, want no call", got)
	}
	other, _ := sessions.NewToken(strings.ToLower(masterName))
	for i := 0; i < 3; i++ {
		mgr.Validate(ctx, other)
	}
	if got := identity(); fmt.Sprint(got) != "map[BatchGetItem:1]" {
		t.Fatalf("a never-issued token validated 3 times: %v, want one BatchGetItem", got)
	}
}

func scanAll(t testing.TB, client *dynamodb.Client, table string) []map[string]types.AttributeValue {
	t.Helper()
	var out []map[string]types.AttributeValue
	var start map[string]types.AttributeValue
	for {
		res, err := client.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table), ExclusiveStartKey: start, ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		out = append(out, res.Items...)
		if len(res.LastEvaluatedKey) == 0 {
			return out
		}
		start = res.LastEvaluatedKey
	}
}
