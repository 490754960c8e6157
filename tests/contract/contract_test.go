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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/authapi"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/monitorapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/samtemplate"
	"github.com/zenithfresh/zenith-serverless/shared/sessionapi"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/trafficapi"
)

const (
	adminUser     = "contract_admin"
	adminPassword = "contract-admin-pass-0001" // test-only credential, generated per table prefix
)

// stack is the four functions built as their main packages build them, each
// with its own client and call counter, over one set of tables.
type stack struct {
	env   *dynamotest.Env
	clock *clock.Fake
	apps  map[string]apitest.Handler
	calls map[string]*store.CallCounter // each function's DynamoDB calls
	keys  map[string]*keyRecorder       // the partition keys of each function's item calls
	mon   *monitorapi.Handler
}

// keyRecorder notes the partition key each single-item call touches, by
// (IAM action, table), for statements limited by dynamodb:LeadingKeys.
type keyRecorder struct {
	mu   sync.Mutex
	keys map[store.Access]map[string]bool
}

func (k *keyRecorder) option() func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Initialize.Add(middleware.InitializeMiddlewareFunc("keyRecorder", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				k.note(in.Parameters)
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
		})
	}
}

func (k *keyRecorder) note(in any) {
	add := func(action string, table *string, key map[string]types.AttributeValue) {
		pk, ok := key["pk"].(*types.AttributeValueMemberS)
		if !ok {
			return
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.keys == nil {
			k.keys = map[store.Access]map[string]bool{}
		}
		a := store.Access{Action: action, Table: aws.ToString(table)}
		if k.keys[a] == nil {
			k.keys[a] = map[string]bool{}
		}
		k.keys[a][pk.Value] = true
	}
	switch v := in.(type) {
	case *dynamodb.GetItemInput:
		add("dynamodb:GetItem", v.TableName, v.Key)
	case *dynamodb.PutItemInput:
		add("dynamodb:PutItem", v.TableName, v.Item)
	case *dynamodb.UpdateItemInput:
		add("dynamodb:UpdateItem", v.TableName, v.Key)
	case *dynamodb.DeleteItemInput:
		add("dynamodb:DeleteItem", v.TableName, v.Key)
	}
}

// only reports whether every call of access a touched one of keys (and at
// least one call was noted).
func (k *keyRecorder) only(a store.Access, keys []string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	seen := k.keys[a]
	if len(seen) == 0 {
		return false
	}
	for pk := range seen {
		if !slices.Contains(keys, pk) {
			return false
		}
	}
	return true
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
		apps:  map[string]apitest.Handler{},
		calls: map[string]*store.CallCounter{},
		keys:  map[string]*keyRecorder{},
	}
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, fn := range []string{"auth", "session", "traffic-manager", "system-monitor"} {
		cfg := env.Config
		cfg.Function = fn
		calls, keys := &store.CallCounter{}, &keyRecorder{}
		s.calls[fn], s.keys[fn] = calls, keys
		d, err := platform.New(ctx, cfg, platform.WithClock(s.clock), platform.WithLogger(quiet),
			platform.WithRandom(&clock.Sequence{Values: []float64{0.5}}), platform.WithDynamoDBOptions(calls.Option(), keys.option()),
			// A loaded DynamoDB Local can exceed the production bound of the
			// counter writes; a dropped failed-login count would miss an alert.
			platform.WithMetricsOutput(io.Discard), platform.WithMetricsWriteTimeout(30*time.Second))
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

// do sends r to function fn with the headers HTTP API passes on (r's win).
func (s *stack) do(t *testing.T, fn string, r apitest.Request) apitest.Response {
	t.Helper()
	headers := map[string]string{"content-type": "application/json", "user-agent": "contract-test"}
	for k, v := range r.Headers {
		headers[k] = v
	}
	r.Headers = headers
	return apitest.Do(t, s.apps[fn], r.Event())
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestRequestLayerOnEveryFunction(t *testing.T) {
	s := newStack(t)
	admin := apitest.Login(t, s.apps["auth"], adminUser, adminPassword)
	big := `{"x":"` + strings.Repeat("a", httpapi.MaxBodyBytes) + `"}`
	type tc struct {
		name   string
		fn     string
		c      apitest.Request
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
			tc{"empty body", fn, apitest.Request{Method: "POST", Path: path}, 400, "EMPTY_BODY"},
			tc{"invalid json", fn, apitest.Request{Method: "POST", Path: path, Body: `{"a":`}, 400, "JSON_PARSE_ERROR"},
			tc{"non-object json", fn, apitest.Request{Method: "POST", Path: path, Body: `[1]`}, 400, "INVALID_BODY_TYPE"},
			tc{"unknown field", fn, apitest.Request{Method: "POST", Path: path, Body: `{"definitelyNotAField":1}`}, 400, "VALIDATION_ERROR"},
			tc{"too large", fn, apitest.Request{Method: "POST", Path: path, Body: big}, 413, "PAYLOAD_TOO_LARGE"},
			tc{"too large after base64", fn, apitest.Request{Method: "POST", Path: path, Body: b64(big), Base64: true}, 413, "PAYLOAD_TOO_LARGE"},
			tc{"base64 invalid json", fn, apitest.Request{Method: "POST", Path: path, Body: b64(`{"a":`), Base64: true}, 400, "JSON_PARSE_ERROR"},
			tc{"base64 non-object", fn, apitest.Request{Method: "POST", Path: path, Body: b64(`"x"`), Base64: true}, 400, "INVALID_BODY_TYPE"},
		)
	}
	cases = append(cases,
		tc{"base64 body accepted", "auth", apitest.Request{Method: "POST", Path: "/api/auth", Body: b64(`{"action":"validate"}`), Base64: true}, 200, ""},
		tc{"base64 body accepted", "traffic-manager", apitest.Request{Method: "POST", Path: "/api/traffic-manager", Body: b64(`{"simulateLoad":false,"connections":0,"load":0}`), Base64: true}, 200, ""},
		tc{"base64 body accepted", "system-monitor", apitest.Request{Method: "POST", Path: "/api/system-monitor", Body: b64(`{"requests":{"total":1}}`), Base64: true}, 200, ""},
		tc{"too large", "session", apitest.Request{Method: "DELETE", Path: "/api/sessions/abcdef", Body: big}, 413, "PAYLOAD_TOO_LARGE"},
		tc{"broken base64", "session", apitest.Request{Method: "DELETE", Path: "/api/sessions/abcdef", Body: "%%%", Base64: true}, 400, "JSON_PARSE_ERROR"},
		tc{"broken base64", "auth", apitest.Request{Method: "POST", Path: "/api/auth", Body: "%%%", Base64: true}, 400, "JSON_PARSE_ERROR"},
	)
	for _, fn := range []string{"auth", "session", "traffic-manager", "system-monitor"} {
		base := map[string]string{"auth": "/api/auth", "session": "/api/sessions", "traffic-manager": "/api/traffic-manager", "system-monitor": "/api/system-monitor"}[fn]
		cases = append(cases,
			tc{"unknown sub-path", fn, apitest.Request{Method: "GET", Path: base + "/no/such/thing"}, 404, "NOT_FOUND"},
			tc{"wrong method", fn, apitest.Request{Method: "PUT", Path: base, Body: "{}"}, 405, "METHOD_NOT_ALLOWED"},
		)
	}
	for _, c := range cases {
		t.Run(c.fn+"/"+c.name, func(t *testing.T) {
			c.c.Headers = apitest.Bearer(admin)
			res := s.do(t, c.fn, c.c)
			if res.Status != c.status {
				t.Fatalf("status %d, want %d: %v", res.Status, c.status, res.Body)
			}
			if c.code != "" && res.Body["code"] != c.code {
				t.Errorf("code %v, want %s", res.Body["code"], c.code)
			}
			if res.Body["requestId"] == nil || res.Headers["X-Request-ID"] == "" || res.Headers["Cache-Control"] != "no-cache, no-store, must-revalidate" || res.Headers["Content-Type"] != "application/json" {
				t.Errorf("common headers/fields missing: %v %v", res.Headers, res.Body)
			}
			if res.Headers["X-RateLimit-Limit"] == "" {
				t.Errorf("request did not pass the limiter: headers %v", res.Headers)
			}
		})
	}
}

// policies reads each function's inline policy statements from template.yaml,
// resources by logical table ID ("UsersTable", "SessionsTable/index/userId-index", "*").
// Conditional (!If) statements are for secrets, not tables, and are skipped.
func policies(t *testing.T) map[string][]samtemplate.Statement {
	t.Helper()
	tmpl, err := samtemplate.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]samtemplate.Statement{}
	for _, fn := range tmpl.Functions {
		for _, st := range fn.Policy {
			if st.Condition == "" {
				out[fn.LogicalID] = append(out[fn.LogicalID], st)
			}
		}
	}
	return out
}

// allowed reports whether the statements grant access a on any item, or
// (a statement limited by dynamodb:LeadingKeys) on every item fn touched.
func (s *stack) allowed(fn string, st []samtemplate.Statement, a store.Access) bool {
	for _, stmt := range st {
		if !slices.Contains(stmt.Actions, a.Action) || len(stmt.OtherConditions) > 0 {
			continue
		}
		if stmt.LeadingKeys != nil && !s.keys[fn].only(a, stmt.LeadingKeys) {
			continue
		}
		for _, r := range stmt.Resources {
			table, index, _ := strings.Cut(r, "/")
			name, ok := s.env.Tables.Name(table)
			if !ok {
				continue
			}
			if index != "" {
				name += "/" + index
			}
			if name == a.Table {
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
	admin := apitest.Login(t, s.apps["auth"], adminUser, adminPassword)
	h := apitest.Bearer(admin)
	expect := func(fn string, c apitest.Request, want int) map[string]any {
		t.Helper()
		if c.Headers == nil {
			c.Headers = h
		}
		res := s.do(t, fn, c)
		if res.Status != want {
			t.Fatalf("%s %s %s: %d, want %d: %v", fn, c.Method, c.Path, res.Status, want, res.Body)
		}
		return res.Body
	}
	// auth: staff management, validate, a failed login (lockout counters), logout.
	expect("auth", apitest.Request{Method: "GET", Path: "/api/auth"}, 200)
	expect("auth", apitest.Request{Method: "POST", Path: "/api/auth", Body: `{"action":"validate"}`}, 200)
	expect("auth", apitest.Request{Method: "GET", Path: "/api/auth/users", Query: map[string]string{"limit": "10"}}, 200)
	for _, u := range []string{"contract_staff", "contract_other"} {
		expect("auth", apitest.Request{Method: "POST", Path: "/api/auth/users",
			Body: fmt.Sprintf(`{"username":%q,"password":"staff-password-1","role":"staff_tester","name":"Staff"}`, u)}, 201)
	}
	expect("auth", apitest.Request{Method: "PATCH", Path: "/api/auth/users/contract_staff", Body: `{"name":"Renamed","role":"master_admin"}`}, 200)
	expect("auth", apitest.Request{Method: "PATCH", Path: "/api/auth/users/contract_staff", Body: `{"role":"staff_tester","password":"another-pass-2"}`}, 200)
	expect("auth", apitest.Request{Method: "POST", Path: "/api/auth", Headers: map[string]string{},
		Body: `{"action":"login","username":"contract_staff","password":"wrong-password-9"}`}, 401)
	staff := apitest.Login(t, s.apps["auth"], "contract_other", "staff-password-1")
	_ = apitest.Login(t, s.apps["auth"], "contract_other", "staff-password-1")

	// session: list, admin list, count, end one, end all of a user, end own.
	list := expect("session", apitest.Request{Method: "GET", Path: "/api/sessions", Headers: apitest.Bearer(staff)}, 200)
	expect("session", apitest.Request{Method: "GET", Path: "/api/sessions", Query: map[string]string{"all": "true", "limit": "5"}}, 200)
	expect("session", apitest.Request{Method: "GET", Path: "/api/sessions", Query: map[string]string{"userId": "contract_other"}}, 200)
	expect("session", apitest.Request{Method: "GET", Path: "/api/sessions/count"}, 200)
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
	expect("session", apitest.Request{Method: "DELETE", Path: "/api/sessions/" + other, Headers: apitest.Bearer(staff)}, 200)
	expect("session", apitest.Request{Method: "DELETE", Path: "/api/sessions", Query: map[string]string{"userId": "contract_other"}}, 200)
	expect("session", apitest.Request{Method: "GET", Path: "/api/sessions", Headers: apitest.Bearer(staff)}, 401)

	// traffic-manager: status, front door, override.
	expect("traffic-manager", apitest.Request{Method: "GET", Path: "/api/traffic-manager", Query: map[string]string{"status": "true"}}, 200)
	expect("traffic-manager", apitest.Request{Method: "GET", Path: "/api/traffic-manager"}, 200)
	expect("traffic-manager", apitest.Request{Method: "POST", Path: "/api/traffic-manager", Body: `{"simulateLoad":true,"connections":10,"load":0.1}`}, 200)

	// system-monitor: every endpoint, a posted sample, acknowledge, and the schedule.
	for _, ep := range []string{"overview", "metrics", "history", "health", "alerts"} {
		expect("system-monitor", apitest.Request{Method: "GET", Path: "/api/system-monitor", Query: map[string]string{"endpoint": ep, "hours": "2"}}, 200)
	}
	expect("system-monitor", apitest.Request{Method: "POST", Path: "/api/system-monitor", Body: `{"requests":{"total":5}}`}, 200)
	expect("system-monitor", apitest.Request{Method: "POST", Path: "/api/system-monitor/alerts/nope/acknowledge"}, 404)
	expect("system-monitor", apitest.Request{Method: "GET", Path: "/api/health", Headers: map[string]string{}}, 200)
	expect("system-monitor", apitest.Request{Method: "POST", Path: "/api/health", Headers: map[string]string{}}, 405)
	if _, err := s.mon.Invoke(context.Background(), json.RawMessage(`{"source":"aws.events","detail-type":"Scheduled Event","detail":{}}`)); err != nil {
		t.Fatalf("scheduled evaluation: %v", err)
	}

	// auth again: delete a user, log out.
	expect("auth", apitest.Request{Method: "DELETE", Path: "/api/auth/users/contract_staff"}, 200)
	expect("auth", apitest.Request{Method: "POST", Path: "/api/auth", Body: `{"action":"logout"}`}, 200)

	pol := policies(t)
	logical := map[string]string{"auth": "AuthFunction", "session": "SessionFunction", "traffic-manager": "TrafficManagerFunction", "system-monitor": "SystemMonitorFunction"}
	for fn, calls := range s.calls {
		accesses := calls.AccessSnapshot()
		if len(accesses) == 0 {
			t.Errorf("%s made no DynamoDB call", fn)
		}
		for a := range accesses {
			if !s.allowed(fn, pol[logical[fn]], a) {
				t.Errorf("%s (%s) needs %s on %s, which template.yaml does not grant", fn, logical[fn], a.Action, strings.TrimPrefix(a.Table, strings.TrimSuffix(s.env.Tables.Users, config.DefaultTables.Users)))
			}
		}
	}
}

func TestCSRFOnEveryFunction(t *testing.T) {
	s := newStack(t)
	admin := apitest.Login(t, s.apps["auth"], adminUser, adminPassword)
	cookie := []string{"zenith_session=" + admin}
	for fn, c := range map[string]apitest.Request{
		"auth":            {Method: "POST", Path: "/api/auth/users", Body: `{"username":"csrf_user","password":"csrf-password-1","role":"staff_tester","name":"X"}`},
		"session":         {Method: "DELETE", Path: "/api/sessions"},
		"traffic-manager": {Method: "POST", Path: "/api/traffic-manager", Body: `{"simulateLoad":true}`},
		"system-monitor":  {Method: "POST", Path: "/api/system-monitor", Body: `{"requests":{"total":1}}`},
	} {
		t.Run(fn, func(t *testing.T) {
			c.Cookies = cookie
			c.Headers = map[string]string{"origin": "https://evil.example"}
			res := s.do(t, fn, c)
			if res.Status != http.StatusForbidden || res.Body["code"] != "CSRF_REJECTED" {
				t.Fatalf("foreign origin: %d %v, want 403 CSRF_REJECTED", res.Status, res.Body)
			}
		})
	}
	// The same cookie with the allowed origin still works, so the refusals above were the check.
	res := s.do(t, "traffic-manager", apitest.Request{Method: "GET", Path: "/api/traffic-manager", Query: map[string]string{"status": "true"}, Cookies: cookie})
	if res.Status != 200 {
		t.Fatalf("cookie GET: %d %v", res.Status, res.Body)
	}
}

// TestFirstKeyUseIsAllowedByTheTemplate: whichever function needs the
// deployment key first creates it (a PutItem of meta#keys on the users
// table); each function's policy allows that one item, and the check above
// would refuse a PutItem on any other users-table item outside auth.
func TestFirstKeyUseIsAllowedByTheTemplate(t *testing.T) {
	pol := policies(t)
	logical := map[string]string{"session": "SessionFunction", "traffic-manager": "TrafficManagerFunction", "system-monitor": "SystemMonitorFunction"}
	paths := map[string]string{"session": "/api/sessions", "traffic-manager": "/api/traffic-manager", "system-monitor": "/api/system-monitor"}
	for fn, id := range logical {
		t.Run(fn, func(t *testing.T) {
			s := newStack(t)
			s.do(t, fn, apitest.Request{Method: "GET", Path: paths[fn] + "/no/such/thing"}) // the limiter needs the key
			put := store.Access{Action: "dynamodb:PutItem", Table: s.env.Tables.Users}
			if s.calls[fn].AccessSnapshot()[put] == 0 {
				t.Fatalf("%s did not create the key: %v", fn, s.calls[fn].AccessSnapshot())
			}
			for a := range s.calls[fn].AccessSnapshot() {
				if !s.allowed(fn, pol[id], a) {
					t.Errorf("%s needs %s on %s, which template.yaml does not grant", fn, a.Action, a.Table)
				}
			}
			// Had the function also put another users-table item, the check would refuse it.
			s.keys[fn].note(&dynamodb.PutItemInput{TableName: aws.String(s.env.Tables.Users),
				Item: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "user#someone"}}})
			if s.allowed(fn, pol[id], put) {
				t.Error("the check allows a PutItem of a user item outside auth")
			}
		})
	}
}
