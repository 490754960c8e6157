// Package contract runs the four real function apps side by side on DynamoDB
// Local: the request layer's errors on every function, and every DynamoDB call
// each function makes checked against its IAM policy in template.yaml, so a
// deployed function can never be denied an action its tests never noticed.
package contract

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"
	"gopkg.in/yaml.v3"

	zenith "github.com/zenithfresh/zenith-serverless"
	"github.com/zenithfresh/zenith-serverless/shared/authapi"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/monitorapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/sessionapi"
	"github.com/zenithfresh/zenith-serverless/shared/tables"
	"github.com/zenithfresh/zenith-serverless/shared/trafficapi"
)

const (
	adminUser     = "contract_admin"
	adminPassword = "contract-admin-pass-0001" // test-only credential, generated per table prefix
)

// access is one DynamoDB action on one table (or index) by one function.
type access struct{ action, table string }

// callLog records the actions a function's client performs, by real table name.
type callLog struct {
	mu   sync.Mutex
	seen map[access]bool
}

func (l *callLog) option() func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(middleware.InitializeMiddlewareFunc("callLog", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				l.add(accesses(in.Parameters)...)
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
		})
	}
}

func (l *callLog) add(as ...access) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[access]bool{}
	}
	for _, a := range as {
		l.seen[a] = true
	}
}

func (l *callLog) all() []access {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]access, 0, len(l.seen))
	for a := range l.seen {
		out = append(out, a)
	}
	return out
}

// accesses maps an operation input to the IAM actions it needs. Transactions
// are authorised per item action, so they are split the same way.
func accesses(in any) []access {
	idx := func(table, index *string) string {
		if index != nil {
			return aws.ToString(table) + "/index/" + aws.ToString(index)
		}
		return aws.ToString(table)
	}
	switch v := in.(type) {
	case *dynamodb.GetItemInput:
		return []access{{"dynamodb:GetItem", aws.ToString(v.TableName)}}
	case *dynamodb.PutItemInput:
		return []access{{"dynamodb:PutItem", aws.ToString(v.TableName)}}
	case *dynamodb.UpdateItemInput:
		return []access{{"dynamodb:UpdateItem", aws.ToString(v.TableName)}}
	case *dynamodb.DeleteItemInput:
		return []access{{"dynamodb:DeleteItem", aws.ToString(v.TableName)}}
	case *dynamodb.QueryInput:
		return []access{{"dynamodb:Query", idx(v.TableName, v.IndexName)}}
	case *dynamodb.ScanInput:
		return []access{{"dynamodb:Scan", idx(v.TableName, v.IndexName)}}
	case *dynamodb.BatchGetItemInput:
		var out []access
		for t := range v.RequestItems {
			out = append(out, access{"dynamodb:BatchGetItem", t})
		}
		return out
	case *dynamodb.BatchWriteItemInput:
		var out []access
		for t := range v.RequestItems {
			out = append(out, access{"dynamodb:BatchWriteItem", t})
		}
		return out
	case *dynamodb.TransactWriteItemsInput:
		var out []access
		for _, it := range v.TransactItems {
			switch {
			case it.Put != nil:
				out = append(out, access{"dynamodb:PutItem", aws.ToString(it.Put.TableName)})
			case it.Update != nil:
				out = append(out, access{"dynamodb:UpdateItem", aws.ToString(it.Update.TableName)})
			case it.Delete != nil:
				out = append(out, access{"dynamodb:DeleteItem", aws.ToString(it.Delete.TableName)})
			case it.ConditionCheck != nil:
				out = append(out, access{"dynamodb:ConditionCheckItem", aws.ToString(it.ConditionCheck.TableName)})
			}
		}
		return out
	case *dynamodb.TransactGetItemsInput:
		var out []access
		for _, it := range v.TransactItems {
			if it.Get != nil {
				out = append(out, access{"dynamodb:GetItem", aws.ToString(it.Get.TableName)})
			}
		}
		return out
	}
	return []access{{fmt.Sprintf("unknown:%T", in), "?"}}
}

// stack is the four functions built as their main packages build them, each
// with its own client and call log, over one set of tables.
type stack struct {
	env   *dynamotest.Env
	clock *clock.Fake
	apps  map[string]func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)
	logs  map[string]*callLog
	mon   *monitorapi.Handler
}

func newStack(t *testing.T) *stack {
	t.Helper()
	env := dynamotest.New(t, "auth", map[string]string{
		"MASTER_USERNAME": adminUser,
		"MASTER_PASSWORD": adminPassword,
		"ALLOWED_ORIGINS": "https://app.zenith.example",
	})
	s := &stack{
		env:   env,
		clock: clock.NewFake(time.Now().UTC().Truncate(time.Minute).Add(30 * time.Second)),
		apps:  map[string]func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error){},
		logs:  map[string]*callLog{},
	}
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, fn := range []string{"auth", "session", "traffic-manager", "system-monitor"} {
		cfg := env.Config
		cfg.Function = fn
		log := &callLog{}
		s.logs[fn] = log
		d, err := platform.New(ctx, cfg, platform.WithClock(s.clock), platform.WithLogger(quiet),
			platform.WithRandom(&clock.Sequence{Values: []float64{0.5}}), platform.WithDynamoDBOptions(log.option()))
		if err != nil {
			t.Fatalf("%s deps: %v", fn, err)
		}
		var app *httpapi.App
		switch fn {
		case "auth":
			app, err = authapi.New(ctx, d)
		case "session":
			app, err = sessionapi.New(ctx, d)
		case "traffic-manager":
			app, err = trafficapi.New(ctx, d)
		case "system-monitor":
			s.mon, err = monitorapi.NewHandler(ctx, d)
			if err == nil {
				app = s.mon.App()
			}
		}
		if err != nil {
			t.Fatalf("%s app: %v", fn, err)
		}
		s.apps[fn] = app.Handle
	}
	return s
}

type call struct {
	method, path, body string
	b64                bool // encode body as base64, as HTTP API does for binary types
	rawB64             bool // flag the body base64 without encoding it (broken base64)
	query              map[string]string
	headers            map[string]string
	cookies            []string
}

func (s *stack) do(t *testing.T, fn string, c call) (int, map[string]any, events.APIGatewayV2HTTPResponse) {
	t.Helper()
	headers := map[string]string{"content-type": "application/json", "user-agent": "contract-test"}
	for k, v := range c.headers {
		headers[k] = v
	}
	body := c.body
	if c.b64 {
		body = base64.StdEncoding.EncodeToString([]byte(c.body))
	}
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "ANY /api/x", RawPath: c.path, Body: body, IsBase64Encoded: c.b64 || c.rawB64,
		Headers: headers, QueryStringParameters: c.query, Cookies: c.cookies,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: httpapi.NewRequestID(),
			HTTP:      events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: c.method, Path: c.path, SourceIP: "198.51.100.7"},
		},
	}
	resp, err := s.apps[fn](context.Background(), ev)
	if err != nil {
		t.Fatalf("%s %s %s: handler error %v", fn, c.method, c.path, err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &m); err != nil {
		t.Fatalf("%s %s %s: body not a JSON object: %q", fn, c.method, c.path, resp.Body)
	}
	return resp.StatusCode, m, resp
}

func (s *stack) login(t *testing.T, user, password string) string {
	t.Helper()
	st, body, _ := s.do(t, "auth", call{method: "POST", path: "/api/auth",
		body: fmt.Sprintf(`{"action":"login","username":%q,"password":%q}`, user, password)})
	if st != 200 {
		t.Fatalf("login %s: %d %v", user, st, body)
	}
	sess, _ := body["session"].(map[string]any)
	tok, _ := sess["id"].(string)
	if tok == "" {
		t.Fatalf("login gave no token: %v", body)
	}
	return tok
}

func bearer(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }

func TestRequestLayerOnEveryFunction(t *testing.T) {
	s := newStack(t)
	admin := s.login(t, adminUser, adminPassword)
	big := `{"x":"` + strings.Repeat("a", httpapi.MaxBodyBytes) + `"}`
	type tc struct {
		name   string
		fn     string
		c      call
		status int
		code   string
	}
	var cases []tc
	bodyRoutes := map[string]string{ // a POST route of each function that reads a JSON body
		"auth":            "/api/auth",
		"traffic-manager": "/api/traffic-manager",
		"system-monitor":  "/api/system-monitor",
	}
	for fn, path := range bodyRoutes {
		cases = append(cases,
			tc{"empty body", fn, call{method: "POST", path: path}, 400, "EMPTY_BODY"},
			tc{"invalid json", fn, call{method: "POST", path: path, body: `{"a":`}, 400, "JSON_PARSE_ERROR"},
			tc{"non-object json", fn, call{method: "POST", path: path, body: `[1]`}, 400, "INVALID_BODY_TYPE"},
			tc{"unknown field", fn, call{method: "POST", path: path, body: `{"definitelyNotAField":1}`}, 400, "VALIDATION_ERROR"},
			tc{"too large", fn, call{method: "POST", path: path, body: big}, 413, "PAYLOAD_TOO_LARGE"},
			tc{"too large after base64", fn, call{method: "POST", path: path, body: big, b64: true}, 413, "PAYLOAD_TOO_LARGE"},
			tc{"base64 invalid json", fn, call{method: "POST", path: path, body: `{"a":`, b64: true}, 400, "JSON_PARSE_ERROR"},
			tc{"base64 non-object", fn, call{method: "POST", path: path, body: `"x"`, b64: true}, 400, "INVALID_BODY_TYPE"},
		)
	}
	cases = append(cases,
		tc{"base64 body accepted", "auth", call{method: "POST", path: "/api/auth", body: `{"action":"validate"}`, b64: true}, 200, ""},
		tc{"base64 body accepted", "traffic-manager", call{method: "POST", path: "/api/traffic-manager", body: `{"simulateLoad":false,"connections":0,"load":0}`, b64: true}, 200, ""},
		tc{"base64 body accepted", "system-monitor", call{method: "POST", path: "/api/system-monitor", body: `{"requests":{"total":1}}`, b64: true}, 200, ""},
		tc{"too large", "session", call{method: "DELETE", path: "/api/sessions/abcdef", body: big}, 413, "PAYLOAD_TOO_LARGE"},
		tc{"broken base64", "session", call{method: "DELETE", path: "/api/sessions/abcdef", body: "%%%", rawB64: true}, 400, "JSON_PARSE_ERROR"},
		tc{"broken base64", "auth", call{method: "POST", path: "/api/auth", body: "%%%", rawB64: true}, 400, "JSON_PARSE_ERROR"},
	)
	for _, fn := range []string{"auth", "session", "traffic-manager", "system-monitor"} {
		base := map[string]string{"auth": "/api/auth", "session": "/api/sessions", "traffic-manager": "/api/traffic-manager", "system-monitor": "/api/system-monitor"}[fn]
		cases = append(cases,
			tc{"unknown sub-path", fn, call{method: "GET", path: base + "/no/such/thing"}, 404, "NOT_FOUND"},
			tc{"wrong method", fn, call{method: "PUT", path: base, body: "{}"}, 405, "METHOD_NOT_ALLOWED"},
		)
	}
	for _, c := range cases {
		t.Run(c.fn+"/"+c.name, func(t *testing.T) {
			c.c.headers = bearer(admin)
			st, body, resp := s.do(t, c.fn, c.c)
			if st != c.status {
				t.Fatalf("status %d, want %d: %v", st, c.status, body)
			}
			if c.code != "" && body["code"] != c.code {
				t.Errorf("code %v, want %s", body["code"], c.code)
			}
			if body["requestId"] == nil || resp.Headers["X-Request-ID"] == "" || resp.Headers["Cache-Control"] != "no-cache, no-store, must-revalidate" || resp.Headers["Content-Type"] != "application/json" {
				t.Errorf("common headers/fields missing: %v %v", resp.Headers, body)
			}
			if resp.Headers["X-RateLimit-Limit"] == "" {
				t.Errorf("request did not pass the limiter: headers %v", resp.Headers)
			}
		})
	}
}

// statement is one IAM statement of a function's policy, resources by logical table ID.
type statement struct {
	actions   []string
	resources []string // "UsersTable", "SessionsTable/index/userId-index", "*"
}

// policies reads each function's inline policy statements from template.yaml.
// Conditional (!If) statements are for secrets, not tables, and are skipped.
func policies(t *testing.T) map[string][]statement {
	t.Helper()
	var doc struct {
		Resources map[string]struct {
			Type       string `yaml:"Type"`
			Properties struct {
				Policies []struct {
					Statement []yaml.Node `yaml:"Statement"`
				} `yaml:"Policies"`
			} `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(zenith.Template, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string][]statement{}
	for id, r := range doc.Resources {
		if r.Type != "AWS::Serverless::Function" {
			continue
		}
		for _, p := range r.Properties.Policies {
			for _, n := range p.Statement {
				if n.Tag == "!If" || n.Kind != yaml.MappingNode {
					continue
				}
				var st statement
				for i := 0; i+1 < len(n.Content); i += 2 {
					k, v := n.Content[i].Value, n.Content[i+1]
					switch k {
					case "Action":
						st.actions = scalars(v)
					case "Resource":
						for _, rn := range nodes(v) {
							st.resources = append(st.resources, resource(rn))
						}
					}
				}
				out[id] = append(out[id], st)
			}
		}
	}
	return out
}

func nodes(n *yaml.Node) []*yaml.Node {
	if n.Kind == yaml.SequenceNode {
		return n.Content
	}
	return []*yaml.Node{n}
}

func scalars(n *yaml.Node) []string {
	var out []string
	for _, c := range nodes(n) {
		out = append(out, c.Value)
	}
	return out
}

func resource(n *yaml.Node) string {
	switch n.Tag {
	case "!GetAtt":
		return strings.TrimSuffix(n.Value, ".Arn")
	case "!Sub":
		v := strings.TrimPrefix(n.Value, "${")
		table, rest, _ := strings.Cut(v, ".Arn}")
		return table + rest
	}
	return n.Value
}

func (s *stack) allowed(st []statement, a access) bool {
	for _, stmt := range st {
		if !slices.Contains(stmt.actions, a.action) {
			continue
		}
		for _, r := range stmt.resources {
			table, index, _ := strings.Cut(r, "/")
			name, ok := tables.Name(s.env.Tables, table)
			if !ok {
				continue
			}
			if index != "" {
				name += "/" + index
			}
			if name == a.table {
				return true
			}
		}
	}
	return false
}

// TestEveryDynamoDBCallIsAllowedByTheTemplate drives every route of every
// function (and the scheduled evaluation) and checks each DynamoDB action on
// each table against that function's IAM policy.
func TestEveryDynamoDBCallIsAllowedByTheTemplate(t *testing.T) {
	s := newStack(t)
	admin := s.login(t, adminUser, adminPassword)
	h := bearer(admin)
	expect := func(fn string, c call, want int) map[string]any {
		t.Helper()
		if c.headers == nil {
			c.headers = h
		}
		st, body, _ := s.do(t, fn, c)
		if st != want {
			t.Fatalf("%s %s %s: %d, want %d: %v", fn, c.method, c.path, st, want, body)
		}
		return body
	}
	// auth: staff management, validate, a failed login (lockout counters), logout.
	expect("auth", call{method: "GET", path: "/api/auth"}, 200)
	expect("auth", call{method: "POST", path: "/api/auth", body: `{"action":"validate"}`}, 200)
	expect("auth", call{method: "GET", path: "/api/auth/users", query: map[string]string{"limit": "10"}}, 200)
	for _, u := range []string{"contract_staff", "contract_other"} {
		expect("auth", call{method: "POST", path: "/api/auth/users",
			body: fmt.Sprintf(`{"username":%q,"password":"staff-password-1","role":"staff_tester","name":"Staff"}`, u)}, 201)
	}
	expect("auth", call{method: "PATCH", path: "/api/auth/users/contract_staff", body: `{"name":"Renamed","role":"master_admin"}`}, 200)
	expect("auth", call{method: "PATCH", path: "/api/auth/users/contract_staff", body: `{"role":"staff_tester","password":"another-pass-2"}`}, 200)
	expect("auth", call{method: "POST", path: "/api/auth", headers: map[string]string{},
		body: `{"action":"login","username":"contract_staff","password":"wrong-password-9"}`}, 401)
	staff := s.login(t, "contract_other", "staff-password-1")
	_ = s.login(t, "contract_other", "staff-password-1")

	// session: list, admin list, count, end one, end all of a user, end own.
	list := expect("session", call{method: "GET", path: "/api/sessions", headers: bearer(staff)}, 200)
	expect("session", call{method: "GET", path: "/api/sessions", query: map[string]string{"all": "true", "limit": "5"}}, 200)
	expect("session", call{method: "GET", path: "/api/sessions", query: map[string]string{"userId": "contract_other"}}, 200)
	expect("session", call{method: "GET", path: "/api/sessions/count"}, 200)
	sessionsList, _ := list["sessions"].([]any)
	if len(sessionsList) != 2 {
		t.Fatalf("staff has %d sessions, want 2: %v", len(sessionsList), list)
	}
	var other string
	for _, x := range sessionsList {
		m := x.(map[string]any)
		if m["current"] != true {
			other, _ = m["id"].(string)
		}
	}
	expect("session", call{method: "DELETE", path: "/api/sessions/" + other, headers: bearer(staff)}, 200)
	expect("session", call{method: "DELETE", path: "/api/sessions", query: map[string]string{"userId": "contract_other"}}, 200)
	expect("session", call{method: "GET", path: "/api/sessions", headers: bearer(staff)}, 401)

	// traffic-manager: status, front door, override.
	expect("traffic-manager", call{method: "GET", path: "/api/traffic-manager", query: map[string]string{"status": "true"}}, 200)
	expect("traffic-manager", call{method: "GET", path: "/api/traffic-manager"}, 200)
	expect("traffic-manager", call{method: "POST", path: "/api/traffic-manager", body: `{"simulateLoad":true,"connections":10,"load":0.1}`}, 200)

	// system-monitor: every endpoint, a posted sample, acknowledge, and the schedule.
	for _, ep := range []string{"overview", "metrics", "history", "health", "alerts"} {
		expect("system-monitor", call{method: "GET", path: "/api/system-monitor", query: map[string]string{"endpoint": ep, "hours": "2"}}, 200)
	}
	expect("system-monitor", call{method: "POST", path: "/api/system-monitor", body: `{"requests":{"total":5}}`}, 200)
	expect("system-monitor", call{method: "POST", path: "/api/system-monitor/alerts/nope/acknowledge"}, 404)
	if _, err := s.mon.Invoke(context.Background(), json.RawMessage(`{"source":"aws.events","detail-type":"Scheduled Event","detail":{}}`)); err != nil {
		t.Fatalf("scheduled evaluation: %v", err)
	}

	// auth again: delete a user, log out.
	expect("auth", call{method: "DELETE", path: "/api/auth/users/contract_staff"}, 200)
	expect("auth", call{method: "POST", path: "/api/auth", body: `{"action":"logout"}`}, 200)

	pol := policies(t)
	logical := map[string]string{"auth": "AuthFunction", "session": "SessionFunction", "traffic-manager": "TrafficManagerFunction", "system-monitor": "SystemMonitorFunction"}
	for fn, log := range s.logs {
		calls := log.all()
		if len(calls) == 0 {
			t.Errorf("%s made no DynamoDB call", fn)
		}
		for _, a := range calls {
			if !s.allowed(pol[logical[fn]], a) {
				t.Errorf("%s (%s) needs %s on %s, which template.yaml does not grant", fn, logical[fn], a.action, strings.TrimPrefix(a.table, strings.TrimSuffix(s.env.Tables.Users, config.DefaultTables.Users)))
			}
		}
	}
}

func TestCSRFOnEveryFunction(t *testing.T) {
	s := newStack(t)
	admin := s.login(t, adminUser, adminPassword)
	cookie := []string{"zenith_session=" + admin}
	for fn, c := range map[string]call{
		"auth":            {method: "POST", path: "/api/auth/users", body: `{"username":"csrf_user","password":"csrf-password-1","role":"staff_tester","name":"X"}`},
		"session":         {method: "DELETE", path: "/api/sessions"},
		"traffic-manager": {method: "POST", path: "/api/traffic-manager", body: `{"simulateLoad":true}`},
		"system-monitor":  {method: "POST", path: "/api/system-monitor", body: `{"requests":{"total":1}}`},
	} {
		t.Run(fn, func(t *testing.T) {
			c.cookies = cookie
			c.headers = map[string]string{"origin": "https://evil.example"}
			st, body, _ := s.do(t, fn, c)
			if st != http.StatusForbidden || body["code"] != "CSRF_REJECTED" {
				t.Fatalf("foreign origin: %d %v, want 403 CSRF_REJECTED", st, body)
			}
		})
	}
	// The same cookie with the allowed origin still works, so the refusals above were the check.
	st, body, _ := s.do(t, "traffic-manager", call{method: "GET", path: "/api/traffic-manager", query: map[string]string{"status": "true"}, cookies: cookie})
	if st != 200 {
		t.Fatalf("cookie GET: %d %v", st, body)
	}
}
