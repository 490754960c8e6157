package authapi_test

import (
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
)

// A login's lockout-and-user read runs alongside its rate-limit decision
// (both one round trip): the first read and the first limiter write of each
// login meet. A client the limiter already refuses costs no read at all.
func TestLoginReadsAlongsideTheLimiter(t *testing.T) {
	e := newEnv(t, nil)
	limits := e.env.Tables.RateLimits
	z := &apitest.Rendezvous{
		A: func(in any) bool { _, ok := in.(*dynamodb.BatchGetItemInput); return ok },
		B: func(in any) bool {
			u, ok := in.(*dynamodb.UpdateItemInput)
			return ok && aws.ToString(u.TableName) == limits
		},
	}
	_, app := e.start(t, z.Option())
	login := func() apitest.Response {
		return apitest.Do(t, app.Handle, loginReq(t, masterName, e.masterPassword).Event())
	}
	if res := login(); res.Status != http.StatusOK { // runs the bootstrap first
		t.Fatalf("first login: %d %s", res.Status, res.Raw)
	}
	for i := 0; i < 3; i++ {
		z.Arm()
		if res := login(); res.Status != http.StatusOK {
			t.Fatalf("login %d: %d %s", i, res.Status, res.Raw)
		}
	}
	z.Disarm()
	if n := z.Missed(); n != 0 {
		t.Fatalf("%d times the login read and the limiter write did not overlap", n)
	}
}

// A client the limiter already refuses (its deny cache) costs no login read.
func TestRefusedLoginCostsNoRead(t *testing.T) {
	e := newEnv(t, map[string]string{"RATE_LIMIT_API_RPM": "3", "RATE_LIMIT_API_BURST": "0"})
	for i := 0; i < 3; i++ {
		if res := e.do(t, loginReq(t, masterName, "wrong-password-1")); res.Status != http.StatusUnauthorized {
			t.Fatalf("login %d within the budget: %d %s", i, res.Status, res.Raw)
		}
	}
	if res := e.do(t, loginReq(t, masterName, "wrong-password-1")); res.Status != http.StatusTooManyRequests {
		t.Fatalf("over the budget: %d %s", res.Status, res.Raw)
	}
	e.calls.Reset()
	for i := 0; i < 10; i++ {
		if res := e.do(t, loginReq(t, masterName, e.masterPassword)); res.Status != http.StatusTooManyRequests {
			t.Fatalf("refused login %d: %d %s", i, res.Status, res.Raw)
		}
	}
	if n := e.calls.Count("BatchGetItem"); n != 0 {
		t.Fatalf("%d login reads for refused logins, want 0", n)
	}
}
