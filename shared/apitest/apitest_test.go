package apitest_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
)

func TestEventDefaults(t *testing.T) {
	ev := apitest.Request{Method: "GET", Path: "/api/x", Query: map[string]string{"b": "2", "a": "1 1"}}.Event()
	if ev.RawPath != "/api/x" || ev.RequestContext.HTTP.Path != "/api/x" || ev.RequestContext.HTTP.Method != "GET" ||
		ev.RequestContext.HTTP.SourceIP != apitest.DefaultSourceIP || ev.RawQueryString != "a=1+1&b=2" || ev.Version != "2.0" {
		t.Errorf("event = %+v", ev)
	}
	if id := ev.RequestContext.RequestID; len(id) != 32 || id == (apitest.Request{}).Event().RequestContext.RequestID {
		t.Errorf("request id %q: want a random one", id)
	}
	ev = apitest.Request{SourceIP: "203.0.113.1", RequestID: "req-1", Body: "e30=", Base64: true}.Event()
	if ev.RequestContext.HTTP.SourceIP != "203.0.113.1" || ev.RequestContext.RequestID != "req-1" || !ev.IsBase64Encoded || ev.Body != "e30=" {
		t.Errorf("event = %+v", ev)
	}
}

func TestDoDecodesTheAnswer(t *testing.T) {
	h := func(_ context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		return events.APIGatewayV2HTTPResponse{StatusCode: 201, Headers: map[string]string{"X": ev.Headers["authorization"]},
			Cookies: []string{"c=1"}, Body: `{"session":{"id":"tok"},"code":"OK"}`}, nil
	}
	res := apitest.Do(t, h, apitest.Request{Method: "POST", Path: "/api/auth", Headers: apitest.Bearer("t")}.Event())
	if res.Status != 201 || res.Headers["X"] != "Bearer t" || res.Cookies[0] != "c=1" || res.Str("code") != "OK" ||
		res.Get("session.id") != "tok" || res.Get("session.id.x") != nil || res.Get("nope") != nil {
		t.Errorf("response = %+v", res)
	}
	if tok := apitest.Login(t, func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		r, _ := h(ctx, ev)
		r.StatusCode = 200
		return r, nil
	}, "user", "pw"); tok != "tok" {
		t.Errorf("Login = %q", tok)
	}
}

func TestMergeAndRandom(t *testing.T) {
	m := apitest.Merge(map[string]string{"A": "1", "B": "1"}, nil, map[string]string{"B": "2"})
	if len(m) != 2 || m["A"] != "1" || m["B"] != "2" {
		t.Errorf("Merge = %v", m)
	}
	a, b := apitest.RandomPassword(t), apitest.RandomPassword(t)
	if len(a) != 27 || a == b || len(apitest.RandomHex(t, 4)) != 8 {
		t.Errorf("random: %q %q", a, b)
	}
}

// TestNotInProduction: no function or program of the module links this package.
func TestNotInProduction(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/zenithfresh/zenith-serverless/functions/...", "github.com/zenithfresh/zenith-serverless/cmd/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "github.com/zenithfresh/zenith-serverless/shared/apitest" {
			t.Fatal("production code imports shared/apitest")
		}
	}
}

// checker is a Validator that refuses answers with status 418 and records the
// exchanges it saw.
type checker struct{ seen []string }

func (c *checker) Check(ev events.APIGatewayV2HTTPRequest, out events.APIGatewayV2HTTPResponse) error {
	c.seen = append(c.seen, ev.RawPath)
	if out.StatusCode == 418 {
		return errors.New("418 is not documented")
	}
	return nil
}

// reported keeps what Do reports instead of failing the test.
type reported struct {
	testing.TB
	errors []string
}

func (r *reported) Helper()                   {}
func (r *reported) Errorf(f string, a ...any) { r.errors = append(r.errors, fmt.Sprintf(f, a...)) }

func TestValidateWith(t *testing.T) {
	status := 200
	h := func(_ context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		return events.APIGatewayV2HTTPResponse{StatusCode: status, Body: `{"ok":true}`}, nil
	}
	c := &checker{}
	apitest.ValidateWith(c)
	defer apitest.ValidateWith(nil)

	r := &reported{TB: t}
	apitest.Do(r, h, apitest.Request{Method: "GET", Path: "/a"}.Event())
	status = 418
	apitest.Do(r, h, apitest.Request{Method: "GET", Path: "/b"}.Event())
	apitest.DoUnvalidated(r, h, apitest.Request{Method: "GET", Path: "/t/c"}.Event())
	if len(c.seen) != 2 || c.seen[0] != "/a" || c.seen[1] != "/b" {
		t.Errorf("validated %v, want /a and /b (not the unvalidated /t/c)", c.seen)
	}
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "418 is not documented") {
		t.Errorf("reported %v, want the one mismatch", r.errors)
	}
	if err := apitest.Validate(apitest.Request{Path: "/d"}.Event(), events.APIGatewayV2HTTPResponse{StatusCode: 418}); err == nil {
		t.Error("Validate passed a 418")
	}
	apitest.ValidateWith(nil)
	if err := apitest.Validate(apitest.Request{Path: "/e"}.Event(), events.APIGatewayV2HTTPResponse{StatusCode: 418}); err != nil || len(c.seen) != 3 {
		t.Errorf("with no validator: %v, seen %v", err, c.seen)
	}
}
