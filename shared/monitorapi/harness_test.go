package monitorapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/monitorapi"
	"github.com/zenithfresh/zenith-serverless/shared/passwords"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// minuteM is the minute the tests' traffic happens in.
var minuteM = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// emulatorTimeout bounds the recorder's counter write in tests: DynamoDB
// Local on a loaded 2-core machine can exceed the production bound of 1 s,
// which would drop a count and make the exact figures flaky.
const emulatorTimeout = 30 * time.Second

// harness is a real system-monitor function on DynamoDB Local: the platform's
// real session resolver and rate limiter, the real recorder (writing its EMF
// lines to a buffer), and two users made with the identity code: "watcher"
// (staff_tester, has systemMonitoring) and "viewer" (a role without it).
type harness struct {
	t       *testing.T
	env     *dynamotest.Env
	fake    *clock.Fake
	calls   *store.CallCounter
	deps    *platform.Deps
	handler *monitorapi.Handler
	app     *httpapi.App
	emf     *bytes.Buffer

	watcher, viewer string // session tokens
	seq             atomic.Int64
}

func newHarness(t *testing.T, overrides map[string]string, opts ...monitorapi.Option) *harness {
	t.Helper()
	// Sessions outlive the clock moves of the tests (up to 8 days). The
	// counters are read right after requests, so each request writes its own.
	all := apitest.Merge(map[string]string{"SESSION_TTL": "2592000", "SESSION_MAX_LIFETIME": "2592000", "METRICS_FLUSH_INTERVAL": "0"}, overrides)
	calls := &store.CallCounter{}
	env := dynamotest.New(t, "system-monitor", all)
	h := &harness{t: t, env: env, fake: clock.NewFake(minuteM), calls: calls, emf: &bytes.Buffer{}}
	h.deps = h.newDeps(calls.Option())
	handler, err := monitorapi.NewHandler(context.Background(), h.deps, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h.handler, h.app = handler, handler.App()
	h.watcher = h.login("watcher", users.RoleStaffTester)
	h.viewer = h.login("viewer", "viewer")
	return h
}

// newDeps builds another instance's dependencies on the same tables and clock.
func (h *harness) newDeps(dbOpts ...func(*dynamodb.Options)) *platform.Deps {
	h.t.Helper()
	d, err := platform.New(context.Background(), h.env.Config,
		platform.WithClock(h.fake), platform.WithLogger(discard), platform.WithDynamoDBOptions(dbOpts...),
		platform.WithMetricsOutput(h.emf), platform.WithMetricsWriteTimeout(emulatorTimeout))
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

func (h *harness) login(username, role string) string {
	h.t.Helper()
	ctx := context.Background()
	us := users.New(h.env.Client, h.env.Tables.Users, h.fake, discard)
	us.SetPasswordParams(passwords.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err := us.Roles().Seed(ctx); err != nil {
		h.t.Fatal(err)
	}
	if role == "viewer" {
		item, err := attributevalue.MarshalMap(users.Role{
			ID: "viewer", Name: "Viewer", Access: "basic", AIAPIs: true, APIAccess: "limited", ExportFormats: "standard",
		})
		if err != nil {
			h.t.Fatal(err)
		}
		item["pk"] = &types.AttributeValueMemberS{Value: "role#viewer"}
		item["kind"] = &types.AttributeValueMemberS{Value: "role"}
		if _, err := h.env.Client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(h.env.Tables.Users), Item: item}); err != nil {
			h.t.Fatal(err)
		}
	}
	u, err := us.Create(ctx, users.Actor{Username: "test"}, users.NewUser{Username: username, Password: "correct-horse-battery", Role: role})
	if err != nil {
		h.t.Fatal(err)
	}
	token, _, err := h.deps.Sessions.Create(ctx, u)
	if err != nil {
		h.t.Fatal(err)
	}
	return token
}

// event is a request to the monitor app as HTTP API sends it; id is its request id.
func event(method, path string, query map[string]string, body, token string, id int64) events.APIGatewayV2HTTPRequest {
	headers := map[string]string{"content-type": "application/json"}
	if token != "" {
		headers["authorization"] = "Bearer " + token
	}
	return apitest.Request{Method: method, Path: path, Query: query, Headers: headers, Body: body,
		RequestID: "req-" + strconv.FormatInt(id, 10)}.Event()
}

// call invokes app with ev; the body keeps its numbers as json.Number (see num).
// Exchanges are validated against openapi.yaml, except on the made-up /t/*
// routes of the recorder tests, which are not part of the API.
func call(t *testing.T, app *httpapi.App, ev events.APIGatewayV2HTTPRequest) apitest.Response {
	t.Helper()
	do := apitest.Do
	if strings.HasPrefix(ev.RawPath, "/t/") {
		do = apitest.DoUnvalidated
	}
	r := do(t, app.Handle, ev)
	r.Body = nil
	dec := json.NewDecoder(strings.NewReader(r.Raw))
	dec.UseNumber()
	if err := dec.Decode(&r.Body); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, r.Raw)
	}
	if r.Headers["Content-Type"] != "application/json" || r.Headers["X-Request-ID"] == "" || r.Body["requestId"] == nil {
		t.Errorf("missing contract headers/requestId: %v %s", r.Headers, r.Raw)
	}
	return r
}

func (h *harness) get(query map[string]string, token string) apitest.Response {
	h.t.Helper()
	return call(h.t, h.app, event("GET", "/api/system-monitor", query, "", token, h.seq.Add(1)))
}

func (h *harness) post(path, body, token string) apitest.Response {
	h.t.Helper()
	return call(h.t, h.app, event("POST", path, nil, body, token, h.seq.Add(1)))
}

// num reads a JSON number at a path of nested objects; fails when absent or null.
func num(t *testing.T, body map[string]any, path ...string) float64 {
	t.Helper()
	v := field(t, body, path...)
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v = %#v, want a number", path, v)
	}
	f, err := n.Float64()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func field(t *testing.T, body map[string]any, path ...string) any {
	t.Helper()
	var cur any = body
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("%v: %#v is not an object", path, cur)
		}
		v, ok := m[p]
		if !ok {
			t.Fatalf("%v: no field %q in %v", path, p, m)
		}
		cur = v
	}
	return cur
}
