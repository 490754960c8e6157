package sessionapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/sessionapi"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// A token this instance validated before runs its user-keyed limiter write
// and its session read together; the read still happens on every request,
// so a session ended elsewhere is refused on the very next one.
func TestKnownTokenReadsAlongsideTheLimiter(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.login(t, masterName, e.masterPassword)
	limits := e.env.Tables.RateLimits
	z := &apitest.Rendezvous{
		A: func(in any) bool { _, ok := in.(*dynamodb.BatchGetItemInput); return ok },
		B: func(in any) bool {
			u, ok := in.(*dynamodb.UpdateItemInput)
			return ok && aws.ToString(u.TableName) == limits
		},
	}
	calls := &store.CallCounter{}
	deps, err := platform.New(context.Background(), e.env.Config, platform.WithClock(e.clock),
		platform.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), platform.WithDynamoDBOptions(z.Option(), calls.Option()), platform.WithMetricsOutput(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	app, err := sessionapi.New(context.Background(), deps)
	if err != nil {
		t.Fatal(err)
	}
	list := apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(tok)}
	if res := apitest.Do(t, app.Handle, list.Event()); res.Status != 200 {
		t.Fatalf("first request: %d %s", res.Status, res.Raw)
	}
	if _, ok := deps.Sessions.KnownUser(tok); !ok {
		t.Fatal("a validated token is not known to the instance")
	}
	for i := 0; i < 3; i++ {
		z.Arm()
		calls.Reset()
		if res := apitest.Do(t, app.Handle, list.Event()); res.Status != 200 {
			t.Fatalf("request %d: %d %s", i, res.Status, res.Raw)
		}
		if n := calls.Count("BatchGetItem"); n < 1 {
			t.Fatalf("request %d: no session read: revocation would not be exact", i)
		}
	}
	z.Disarm()
	if n := z.Missed(); n != 0 {
		t.Fatalf("%d times the session read and the limiter write did not overlap", n)
	}
	// Ended on the auth function: this instance refuses it at once.
	if res := e.doAuth(t, apitest.Request{Method: http.MethodPost, Path: "/api/auth", Headers: apitest.Bearer(tok),
		Body: `{"action":"logout"}`}); res.Status != 200 {
		t.Fatalf("logout: %d %s", res.Status, res.Raw)
	}
	if res := apitest.Do(t, app.Handle, list.Event()); res.Status != http.StatusUnauthorized {
		t.Fatalf("after logout elsewhere: %d %s", res.Status, res.Raw)
	}
	if _, ok := deps.Sessions.KnownUser(tok); ok {
		t.Fatal("an ended token is still known")
	}
}

// A token the instance has not validated is paid for from its client
// address's budget before it buys a read: a client over its api budget
// sending fresh forged tokens costs no session read at all.
func TestForgedTokensCostNoReadOverBudget(t *testing.T) {
	e := newEnv(t, map[string]string{"RATE_LIMIT_API_RPM": "6", "RATE_LIMIT_API_BURST": "0"})
	calls := &store.CallCounter{}
	deps, err := platform.New(context.Background(), e.env.Config, platform.WithClock(e.clock),
		platform.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), platform.WithDynamoDBOptions(calls.Option()), platform.WithMetricsOutput(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	app, err := sessionapi.New(context.Background(), deps)
	if err != nil {
		t.Fatal(err)
	}
	forged := func() httpapi.Response {
		tok, err := sessions.NewToken("root_admin") // well formed, for a real user, never issued
		if err != nil {
			t.Fatal(err)
		}
		out, err := app.Handle(context.Background(), apitest.Request{Method: http.MethodGet, Path: "/api/sessions",
			Headers: apitest.Bearer(tok), SourceIP: "203.0.113.66"}.Event())
		if err != nil {
			t.Fatal(err)
		}
		return httpapi.Response{Status: out.StatusCode}
	}
	for i := 0; i < 6; i++ {
		if res := forged(); res.Status != http.StatusUnauthorized {
			t.Fatalf("forged token %d within budget: %d, want 401", i, res.Status)
		}
	}
	if n := calls.Count("BatchGetItem"); n != 6 {
		t.Fatalf("%d session reads within the budget of 6", n)
	}
	calls.Reset()
	for i := 0; i < 50; i++ {
		if res := forged(); res.Status != http.StatusTooManyRequests {
			t.Fatalf("forged token %d over budget: %d, want 429", i, res.Status)
		}
	}
	if n := calls.Count("BatchGetItem"); n != 0 {
		t.Fatalf("%d session reads for forged tokens over the client's budget, want 0", n)
	}
}
