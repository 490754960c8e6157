// Package apitest is test support for the functions' HTTP API: it builds API
// Gateway (HTTP API, payload 2.0) events, invokes a handler with them and
// decodes the JSON answer, checking each exchange against the API's document
// when a package enabled it (ValidateWith, from shared/openapitest.Main); it
// also holds the few fixtures several packages' tests share (Epoch, Merge,
// RandomPassword, LogBuffer, ClosedURL). Only tests import it, never
// production code.
package apitest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
)

// DefaultSourceIP is the client address of a Request that names none.
const DefaultSourceIP = "198.51.100.7"

// Epoch is far in the future, so every ttl written under a fake clock set
// near it is decades away from DynamoDB Local's real-time TTL sweep: expiry
// seen by a test is the read-time check, never a deleted item.
var Epoch = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

// Handler is a function's Lambda handler, e.g. an httpapi.App's Handle.
type Handler func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// Request is what a test sets of an event; Event fills in the rest.
type Request struct {
	Method, Path string
	Body         string
	Base64       bool // IsBase64Encoded: Body is sent as given, flagged as base64
	Query        map[string]string
	Headers      map[string]string
	Cookies      []string
	SourceIP     string // DefaultSourceIP when empty
	RequestID    string // a random one when empty
}

// Event is the API Gateway event of r.
func (r Request) Event() events.APIGatewayV2HTTPRequest {
	ip, id := r.SourceIP, r.RequestID
	if ip == "" {
		ip = DefaultSourceIP
	}
	if id == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	var rawQuery string
	if len(r.Query) > 0 {
		q := url.Values{}
		for k, v := range r.Query {
			q.Set(k, v)
		}
		rawQuery = q.Encode()
	}
	return events.APIGatewayV2HTTPRequest{
		Version: "2.0", RawPath: r.Path, RawQueryString: rawQuery,
		QueryStringParameters: r.Query, Headers: r.Headers, Cookies: r.Cookies,
		Body: r.Body, IsBase64Encoded: r.Base64,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: id,
			HTTP:      events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: r.Method, Path: r.Path, SourceIP: ip},
		},
	}
}

// Response is a function's answer with its body decoded.
type Response struct {
	Status  int
	Headers map[string]string
	Cookies []string
	Raw     string         // the body as sent
	Body    map[string]any // Raw decoded
}

// Str returns the string at key of the body ("" when absent or not a string).
func (r Response) Str(key string) string {
	s, _ := r.Body[key].(string)
	return s
}

// Get walks a dotted path ("session.id") into the body; nil when absent.
func (r Response) Get(path string) any {
	var cur any = r.Body
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

// Validator checks one exchange against the API's document
// (shared/openapitest's *Validator); declared here so this package does not
// depend on it.
type Validator interface {
	Check(events.APIGatewayV2HTTPRequest, events.APIGatewayV2HTTPResponse) error
}

var (
	validatorMu sync.RWMutex
	validator   Validator
)

// ValidateWith makes Do (and Validate) check every exchange with v from now
// on; nil turns checking off. A package whose answers are the functions'
// real ones calls it from TestMain, so a field a handler adds, renames or
// retypes without the document fails that package's tests.
func ValidateWith(v Validator) {
	validatorMu.Lock()
	defer validatorMu.Unlock()
	validator = v
}

// Validate checks the exchange with the validator set by ValidateWith; nil
// when none is set.
func Validate(ev events.APIGatewayV2HTTPRequest, out events.APIGatewayV2HTTPResponse) error {
	validatorMu.RLock()
	v := validator
	validatorMu.RUnlock()
	if v == nil {
		return nil
	}
	return v.Check(ev, out)
}

// Check fails t (without stopping it) when the exchange does not match the
// document set by ValidateWith; tests that invoke a function by other means
// than Do (e.g. under the Lambda emulator) call it themselves.
func Check(t testing.TB, ev events.APIGatewayV2HTTPRequest, out events.APIGatewayV2HTTPResponse) {
	t.Helper()
	if err := Validate(ev, out); err != nil {
		t.Errorf("answer does not match openapi.yaml: %v\nbody: %s", err, out.Body)
	}
}

// Do invokes h with ev and decodes the answer. It fails t when h returns an
// error (a function answers every HTTP outcome with a response), when the
// body is not a JSON object, or when a validator is set (ValidateWith) and
// the exchange does not match the document.
func Do(t testing.TB, h Handler, ev events.APIGatewayV2HTTPRequest) Response {
	t.Helper()
	out, err := h(context.Background(), ev)
	if err != nil {
		t.Fatalf("%s %s: Handle returned an error: %v", ev.RequestContext.HTTP.Method, ev.RawPath, err)
	}
	Check(t, ev, out)
	return Read(t, out)
}

// DoUnvalidated is Do without the document check, for test-only routes that
// are not part of the API (a made-up app's /t/* paths).
func DoUnvalidated(t testing.TB, h Handler, ev events.APIGatewayV2HTTPRequest) Response {
	t.Helper()
	out, err := h(context.Background(), ev)
	if err != nil {
		t.Fatalf("%s %s: Handle returned an error: %v", ev.RequestContext.HTTP.Method, ev.RawPath, err)
	}
	return Read(t, out)
}

// Read decodes a function's answer, failing t when its body is not a JSON object.
func Read(t testing.TB, out events.APIGatewayV2HTTPResponse) Response {
	t.Helper()
	res := Response{Status: out.StatusCode, Headers: out.Headers, Cookies: out.Cookies, Raw: out.Body}
	if err := json.Unmarshal([]byte(out.Body), &res.Body); err != nil {
		t.Fatalf("body is not a JSON object: %q", out.Body)
	}
	return res
}

// Login logs username in through the auth function's handler and returns the
// session token, failing t otherwise.
func Login(t testing.TB, auth Handler, username, password string) string {
	t.Helper()
	res := Do(t, auth, Request{Method: http.MethodPost, Path: "/api/auth",
		Body: JSON(t, map[string]any{"action": "login", "username": username, "password": password})}.Event())
	if res.Status != http.StatusOK {
		t.Fatalf("login %s: %d %s", username, res.Status, res.Raw)
	}
	tok, _ := res.Get("session.id").(string)
	if tok == "" {
		t.Fatalf("login gave no token: %s", res.Raw)
	}
	return tok
}

// Bearer is the header map that authenticates with tok.
func Bearer(tok string) map[string]string {
	return map[string]string{"authorization": "Bearer " + tok}
}

// JSON encodes v, failing t when it cannot.
func JSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Merge returns the union of environment overrides (for dynamotest.New or
// config.Load); a later map wins.
func Merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// ClosedURL returns an http URL on the loopback interface where nothing
// listens: an unreachable endpoint (e.g. DYNAMODB_ENDPOINT).
func ClosedURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// RandomHex returns n random bytes, hex-encoded.
func RandomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// RandomPassword makes a test password at run time, so none is written in source.
func RandomPassword(t testing.TB) string {
	t.Helper()
	return "pw-" + RandomHex(t, 12)
}

// LogBuffer collects the output of an app or a process; it is safe for
// concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// ItemGetter is the part of the DynamoDB client SessionItemExists uses.
type ItemGetter interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
}

// SessionItemExists reads, strongly consistent, whether the session item of a
// token is still stored (whatever its expiry says): tests use it to prove
// expiry is decided on read while the item exists.
func SessionItemExists(t testing.TB, db ItemGetter, table, token string) bool {
	t.Helper()
	out, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: sessions.HashToken(token)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item != nil
}
