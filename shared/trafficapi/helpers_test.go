package trafficapi_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/trafficapi"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// base is 30 s into the noon minute of apitest.Epoch (far in the future, so
// no ttl written under the fake clock is near DynamoDB Local's TTL sweep).
var base = apitest.Epoch.Add(12*time.Hour + 30*time.Second)

// small: frontdoor RPM 20 + burst 5 = C 25, T = 3 s; api RPM 6, C 6, T 10 s.
var small = map[string]string{
	"RATE_LIMIT_RPM": "20", "RATE_LIMIT_BURST": "5", "RATE_LIMIT_WINDOW": "60",
	"RATE_LIMIT_API_RPM": "6", "RATE_LIMIT_API_BURST": "0",
	// The load is read from the counters right after requests: each request writes its own.
	"METRICS_FLUSH_INTERVAL": "0",
}

// identity holds session tokens of real users (shared/users and
// shared/sessions, the identity engineer's code), resolved by the platform's
// real session resolver.
type identity struct {
	admin string // master_admin: has trafficControl
	staff string // staff_tester: has not
}

func seedIdentity(t *testing.T, env *dynamotest.Env, c clock.Clock) identity {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	us := users.New(env.Client, env.Tables.Users, c, logger)
	if err := us.Roles().Seed(ctx); err != nil {
		t.Fatal(err)
	}
	sm := sessions.New(env.Client, platform.SessionTables(env.Config), platform.SessionConfig(env.Config), us.Roles(), c, logger)
	var id identity
	for _, u := range []struct {
		name, role string
		tok        *string
	}{{"traffic_admin", users.RoleMasterAdmin, &id.admin}, {"traffic_staff", users.RoleStaffTester, &id.staff}} {
		user, err := us.Create(ctx, users.Actor{Username: "test"}, users.NewUser{Username: u.name, Password: apitest.RandomPassword(t), Role: u.role, Name: u.name})
		if err != nil {
			t.Fatal(err)
		}
		if *u.tok, _, err = sm.Create(ctx, user); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

type app struct {
	*httpapi.App
	t     *testing.T
	deps  *platform.Deps
	admin string // a trafficControl session token, when the test made one
}

type appOpts struct {
	clock  clock.Clock
	random clock.Random
	db     []func(*dynamodb.Options)
}

// newApp builds one instance of the real function: its own platform (own SDK
// client, own limiter caches, own load cache) on env's tables.
func newApp(t *testing.T, env *dynamotest.Env, o appOpts) *app {
	t.Helper()
	opts := []platform.Option{platform.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	if o.clock != nil {
		opts = append(opts, platform.WithClock(o.clock))
	}
	if o.random != nil {
		opts = append(opts, platform.WithRandom(o.random))
	}
	if len(o.db) > 0 {
		opts = append(opts, platform.WithDynamoDBOptions(o.db...))
	}
	deps, err := platform.New(context.Background(), env.Config, opts...)
	if err != nil {
		t.Fatal(err)
	}
	a, err := trafficapi.New(context.Background(), deps)
	if err != nil {
		t.Fatal(err)
	}
	return &app{App: a, t: t, deps: deps}
}

type reqOpt func(*apitest.Request)

func from(ip string) reqOpt {
	return func(r *apitest.Request) { r.SourceIP = ip }
}

func header(k, v string) reqOpt {
	return func(r *apitest.Request) { r.Headers[k] = v }
}

func bearer(tok string) reqOpt { return header("Authorization", "Bearer "+tok) }

func query(k, v string) reqOpt {
	return func(r *apitest.Request) {
		if r.Query == nil {
			r.Query = map[string]string{}
		}
		r.Query[k] = v
	}
}

func body(s string) reqOpt {
	return func(r *apitest.Request) { r.Body = s }
}

func event(method, path string, opts ...reqOpt) events.APIGatewayV2HTTPRequest {
	r := apitest.Request{Method: method, Path: path, Headers: map[string]string{}, SourceIP: "203.0.113.10"}
	for _, o := range opts {
		o(&r)
	}
	return r.Event()
}

func (a *app) do(method string, opts ...reqOpt) apitest.Response {
	a.t.Helper()
	return a.doPath(method, trafficapi.Path, opts...)
}

func (a *app) doPath(method, path string, opts ...reqOpt) apitest.Response {
	a.t.Helper()
	res := apitest.Do(a.t, a.Handle, event(method, path, opts...))
	if res.Body["requestId"] == nil || res.Headers["X-Request-ID"] == "" || res.Headers["Content-Type"] != "application/json" {
		a.t.Errorf("common parts missing: %v %v", res.Headers, res.Body)
	}
	return res
}
