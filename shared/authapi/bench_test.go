package authapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
)

// quietMetrics turns the metrics recorder's DynamoDB writes off in the
// request-level benchmarks, so the calls counted are identity's plus the
// rate limiter's one UpdateItem per request.
var quietMetrics = map[string]string{"METRICS_REALTIME": "off"}

// reportCalls adds DynamoDB calls per operation, by operation name, to the
// benchmark output.
func (e *testEnv) reportCalls(b *testing.B) {
	for op, n := range e.calls.Snapshot() {
		b.ReportMetric(float64(n)/float64(b.N), op+"/op")
	}
}

// BenchmarkValidate is the session resolver every protected request runs:
// one strongly consistent BatchGetItem (the touch interval has not passed).
func BenchmarkValidate(b *testing.B) {
	e := newEnv(b, nil)
	tok := e.login(b, masterName, e.masterPassword)
	mgr := e.deps.Sessions
	ctx := context.Background()
	if p, err := mgr.Resolve(ctx, tok); err != nil || p == nil {
		b.Fatal("setup: invalid session")
	}
	e.calls.Reset()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if p, err := mgr.Resolve(ctx, tok); err != nil || p == nil {
			b.Fatal("invalid session")
		}
	}
	b.StopTimer()
	e.reportCalls(b)
}

// BenchmarkValidateTouch validates with SESSION_TOUCH_INTERVAL=0, the worst
// case: every validate also writes the idle refresh.
func BenchmarkValidateTouch(b *testing.B) {
	e := newEnv(b, map[string]string{"SESSION_TOUCH_INTERVAL": "0"})
	tok := e.login(b, masterName, e.masterPassword)
	mgr := e.deps.Sessions
	ctx := context.Background()
	e.calls.Reset()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.clock.Advance(1000000) // 1 ms, so each read sees the interval passed
		if p, err := mgr.Resolve(ctx, tok); err != nil || p == nil {
			b.Fatal("invalid session")
		}
	}
	b.StopTimer()
	e.reportCalls(b)
}

// BenchmarkValidateRequest is GET /api/auth end to end through the app
// (session resolution, limiter, routing, body), on DynamoDB Local.
func BenchmarkValidateRequest(b *testing.B) {
	e := newEnv(b, quietMetrics)
	tok := e.login(b, masterName, e.masterPassword)
	req := apitest.Request{Method: http.MethodGet, Path: "/api/auth", Headers: apitest.Bearer(tok)}
	e.calls.Reset()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res := e.do(b, req); res.Status != 200 {
			b.Fatalf("validate: %d", res.Status)
		}
	}
	b.StopTimer()
	e.reportCalls(b)
}

// BenchmarkLogin is POST /api/auth login end to end: lockout check and user
// read in one BatchGetItem, argon2id verify (m=19 MiB, t=2, p=1), session put.
func BenchmarkLogin(b *testing.B) {
	e := newEnv(b, quietMetrics)
	e.login(b, masterName, e.masterPassword) // warm: role cache, trusted pair
	req := loginReq(b, masterName, e.masterPassword)
	e.calls.Reset()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res := e.do(b, req); res.Status != 200 {
			b.Fatalf("login: %d", res.Status)
		}
	}
	b.StopTimer()
	e.reportCalls(b)
}

// BenchmarkLoginFailure is a wrong password (unknown-user path is the same
// cost: a dummy hash); the lock is kept away by advancing the clock.
func BenchmarkLoginFailure(b *testing.B) {
	e := newEnv(b, quietMetrics)
	req := loginReq(b, masterName, "wrong-password!")
	e.calls.Reset()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.clock.Advance(16 * 60 * 1000000000) // past the counter window: never locked
		if res := e.do(b, req); res.Status != 401 {
			b.Fatalf("login: %d", res.Status)
		}
	}
	b.StopTimer()
	e.reportCalls(b)
}

// BenchmarkLogout is POST /api/auth logout with the token in the body: one
// conditional DeleteItem (sessions are created outside the timer).
func BenchmarkLogout(b *testing.B) {
	e := newEnv(b, quietMetrics)
	mgr := e.deps.Sessions
	ctx := context.Background()
	e.login(b, masterName, e.masterPassword) // the master user is made before the first login (lazily)
	u, err := userOf(e, masterName)
	if err != nil || u == nil {
		b.Fatalf("master user: %v, %v", u, err)
	}
	tokens := make([]string, b.N)
	for i := range tokens {
		if tokens[i], _, err = mgr.Create(ctx, u); err != nil {
			b.Fatal(err)
		}
	}
	bodies := make([]string, b.N)
	for i, tok := range tokens {
		bodies[i] = apitest.JSON(b, map[string]any{"action": "logout", "sessionId": tok})
	}
	e.calls.Reset()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res := e.do(b, apitest.Request{Method: http.MethodPost, Path: "/api/auth", Body: bodies[i]}); res.Status != 200 || res.Body["success"] != true {
			b.Fatalf("logout: %d %s", res.Status, res.Raw)
		}
	}
	b.StopTimer()
	e.reportCalls(b)
}
