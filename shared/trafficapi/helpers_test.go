package trafficapi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/trafficapi"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// base is far in the future (30 s into a minute), so every ttl written under
// the fake clock is decades away from DynamoDB Local's real-time TTL sweep.
var base = time.Date(2100, 1, 1, 12, 0, 30, 0, time.UTC)

// small: frontdoor RPM 20 + burst 5 = C 25, T = 3 s; api RPM 6, C 6, T 10 s.
var small = map[string]string{
	"RATE_LIMIT_RPM": "20", "RATE_LIMIT_BURST": "5", "RATE_LIMIT_WINDOW": "60",
	"RATE_LIMIT_API_RPM": "6", "RATE_LIMIT_API_BURST": "0",
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
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
	sm := sessions.New(env.Client, env.Config, c, logger)
	var id identity
	for _, u := range []struct {
		name, role string
		tok        *string
	}{{"traffic_admin", users.RoleMasterAdmin, &id.admin}, {"traffic_staff", users.RoleStaffTester, &id.staff}} {
		pw := make([]byte, 12)
		_, _ = rand.Read(pw)
		user, err := us.Create(ctx, users.Actor{Username: "test"}, users.NewUser{Username: u.name, Password: "pw-" + hex.EncodeToString(pw), Role: u.role, Name: u.name})
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

type reqOpt func(*events.APIGatewayV2HTTPRequest)

func from(ip string) reqOpt {
	return func(ev *events.APIGatewayV2HTTPRequest) { ev.RequestContext.HTTP.SourceIP = ip }
}

func header(k, v string) reqOpt {
	return func(ev *events.APIGatewayV2HTTPRequest) { ev.Headers[k] = v }
}

func bearer(tok string) reqOpt { return header("Authorization", "Bearer "+tok) }

func query(k, v string) reqOpt {
	return func(ev *events.APIGatewayV2HTTPRequest) {
		if ev.QueryStringParameters == nil {
			ev.QueryStringParameters = map[string]string{}
		}
		ev.QueryStringParameters[k] = v
	}
}

func body(s string) reqOpt {
	return func(ev *events.APIGatewayV2HTTPRequest) { ev.Body = s }
}

func event(method, path string, opts ...reqOpt) events.APIGatewayV2HTTPRequest {
	ev := events.APIGatewayV2HTTPRequest{RawPath: path, Headers: map[string]string{}}
	ev.RequestContext.HTTP.Method = method
	ev.RequestContext.HTTP.Path = path
	ev.RequestContext.HTTP.SourceIP = "203.0.113.10"
	for _, o := range opts {
		o(&ev)
	}
	return ev
}

type answer struct {
	Status  int
	Headers map[string]string
	Body    map[string]any
}

func (a *app) do(method string, opts ...reqOpt) answer {
	a.t.Helper()
	return a.doPath(method, trafficapi.Path, opts...)
}

func (a *app) doPath(method, path string, opts ...reqOpt) answer {
	a.t.Helper()
	res, err := a.Handle(context.Background(), event(method, path, opts...))
	if err != nil {
		a.t.Fatalf("Handle returned an error: %v", err)
	}
	var b map[string]any
	if err := json.Unmarshal([]byte(res.Body), &b); err != nil {
		a.t.Fatalf("body is not a JSON object: %q", res.Body)
	}
	if b["requestId"] == nil || res.Headers["X-Request-ID"] == "" || res.Headers["Content-Type"] != "application/json" {
		a.t.Errorf("common parts missing: %v %v", res.Headers, b)
	}
	return answer{Status: res.StatusCode, Headers: res.Headers, Body: b}
}

// tableCounter counts DynamoDB calls by table, so a test can tell the
// limiter's calls from the metrics recorder's.
type tableCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *tableCounter) Option() func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(middleware.InitializeMiddlewareFunc("TableCounter", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				table := "?"
				switch p := in.Parameters.(type) {
				case *dynamodb.UpdateItemInput:
					table = aws.ToString(p.TableName)
				case *dynamodb.GetItemInput:
					table = aws.ToString(p.TableName)
				case *dynamodb.PutItemInput:
					table = aws.ToString(p.TableName)
				case *dynamodb.QueryInput:
					table = aws.ToString(p.TableName)
				}
				c.mu.Lock()
				if c.counts == nil {
					c.counts = map[string]int{}
				}
				c.counts[table]++
				c.mu.Unlock()
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
		})
	}
}

func (c *tableCounter) Count(table string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[table]
}

func (c *tableCounter) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.counts {
		n += v
	}
	return n
}

func (c *tableCounter) Snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

func (c *tableCounter) Reset() {
	c.mu.Lock()
	c.counts = nil
	c.mu.Unlock()
}
