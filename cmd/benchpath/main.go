// Command benchpath measures the critical path of each request class: how
// many DynamoDB round trips a request waits on, and the calls and capacity
// units it spends. It runs the local API server (cmd/localapi, the real
// handlers) with DYNAMODB_ENDPOINT pointing at an in-process shared/dbproxy in
// front of DynamoDB Local, and for every class sends requests with the proxy
// adding a delay D = 0 and D = 50 ms to every DynamoDB call, alternating the
// two sides round by round. Round trips on the critical path =
// (median latency at D − median latency at 0) ÷ D; calls and units come from
// the proxy's accounting of the same requests.
//
// `make bench-path` runs it inside bin/withdynamo and writes the table into
// BENCHMARKS.md between the bench-path markers.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/benchdoc"
	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
)

func main() {
	var (
		write  = flag.String("write", "", "markdown file whose bench-path section to replace (e.g. BENCHMARKS.md)")
		rounds = flag.Int("rounds", 6, "rounds per class; each round sends -n requests at D=0 and -n at D=delay, the sides alternating")
		n      = flag.Int("n", 6, "requests per side and round")
		delay  = flag.Duration("delay", 50*time.Millisecond, "the injected DynamoDB round trip D")
		only   = flag.String("only", "", "run only the classes whose name contains this")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *write, *rounds, *n, *delay, *only); err != nil {
		fmt.Fprintf(os.Stderr, "benchpath: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, write string, rounds, n int, delay time.Duration, only string) error {
	upstream := os.Getenv("DYNAMODB_ENDPOINT")
	if upstream == "" {
		return errors.New("DYNAMODB_ENDPOINT is not set: run under bin/withdynamo (make bench-path)")
	}
	proxy, err := dbproxy.New(upstream)
	if err != nil {
		return err
	}
	defer proxy.Close()

	load0 := benchdoc.LoadAvg()
	srv, err := startServer(ctx, proxy.URL())
	if err != nil {
		return err
	}
	defer srv.stop()

	b := &bench{base: srv.url, proxy: proxy, client: &http.Client{Timeout: 30 * time.Second}}
	if err := b.setup(srv.password); err != nil {
		return err
	}
	var results []result
	for _, c := range b.classes() {
		if only != "" && !strings.Contains(c.name, only) {
			continue
		}
		r, err := b.measure(c, rounds, n, delay)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		fmt.Fprintf(os.Stderr, "%-58s %s\n", c.name, r.row())
		results = append(results, r)
	}
	table := render(results, rounds, n, delay, load0)
	fmt.Print(table)
	if write != "" {
		return benchdoc.ReplaceSection(write, "bench-path", table)
	}
	return nil
}

// --- the local API server -------------------------------------------------------------------

type server struct {
	url      string
	password string
	cmd      *exec.Cmd
	log      *bytes.Buffer
}

func startServer(ctx context.Context, dynamo string) (*server, error) {
	dir, err := os.MkdirTemp("", "benchpath")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "localapi")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/localapi")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("build cmd/localapi: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	password := randomString(24)
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(),
		"PORT="+strconv.Itoa(port),
		"DYNAMODB_ENDPOINT="+dynamo,
		"MASTER_USERNAME=bench_admin",
		"MASTER_PASSWORD="+password,
		// Each class has its own users and addresses (X-Forwarded-For from the
		// loopback peer is believed), so limits never interfere across classes.
		"TRUSTED_PROXY_CIDRS=127.0.0.0/8,::1/128",
		// A day-long window: a client over its limit stays over it for the
		// whole run, so the denied classes measure denials only.
		"RATE_LIMIT_WINDOW=86400",
		"METRICS_HISTORY_SOURCE=dynamodb",
		"LOCALDB_VERBOSE=",
	)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{url: fmt.Sprintf("http://127.0.0.1:%d", port), password: password, cmd: cmd, log: &log}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		res, err := http.Get(s.url + "/api/traffic-manager?status=true")
		if err == nil {
			res.Body.Close()
			return s, nil
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			s.stop()
			return nil, fmt.Errorf("local API server did not start: %v\n%s", err, log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *server) stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		_ = s.cmd.Wait()
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// --- request classes ------------------------------------------------------------------------

type bench struct {
	base   string
	proxy  *dbproxy.Proxy
	client *http.Client
	admin  string // the master user's token
	seq    int
}

// class is one kind of request; next builds the next request of it (fresh
// client addresses or tokens where the class needs them).
type class struct {
	name   string
	target string // the target, as round trips
	status int    // the answer every request of the class must get
	next   func() (*http.Request, error)
}

func (b *bench) setup(password string) error {
	tok, err := b.login("bench_admin", password, "198.18.0.1")
	if err != nil {
		return err
	}
	b.admin = tok
	return nil
}

func (b *bench) request(method, path string, body any, token, ip string) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, b.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("X-Forwarded-For", ip)
	return req, nil
}

func (b *bench) do(req *http.Request) (int, map[string]any, error) {
	res, err := b.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, nil, err
	}
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	return res.StatusCode, body, nil
}

func (b *bench) login(username, password, ip string) (string, error) {
	req, err := b.request(http.MethodPost, "/api/auth", map[string]any{"action": "login", "username": username, "password": password}, "", ip)
	if err != nil {
		return "", err
	}
	status, body, err := b.do(req)
	if err != nil {
		return "", err
	}
	sess, _ := body["session"].(map[string]any)
	tok, _ := sess["id"].(string)
	if status != http.StatusOK || tok == "" {
		return "", fmt.Errorf("login %s: %d %v", username, status, body)
	}
	return tok, nil
}

// user creates a staff user and logs it in, for a class of its own.
func (b *bench) user(role string) (name, password, token string, err error) {
	b.seq++
	name, password = fmt.Sprintf("bench_%d_%s", b.seq, randomString(6)), randomString(20)
	req, err := b.request(http.MethodPost, "/api/auth/users", map[string]any{"username": name, "password": password, "role": role, "name": name}, b.admin, "198.18.0.1")
	if err != nil {
		return "", "", "", err
	}
	status, body, err := b.do(req)
	if err != nil {
		return "", "", "", err
	}
	if status != http.StatusCreated {
		return "", "", "", fmt.Errorf("create user: %d %v", status, body)
	}
	token, err = b.login(name, password, "198.18.0.2")
	return name, password, token, err
}

func (b *bench) classes() []class {
	ip := 0
	nextIP := func() string { ip++; return fmt.Sprintf("198.19.%d.%d", ip/250, ip%250+1) }
	fixed := func(method, path string, body any, token func() string, ip string) func() (*http.Request, error) {
		return func() (*http.Request, error) { return b.request(method, path, body, token(), ip) }
	}
	must := func(_, _, token string, err error) func() string {
		if err != nil {
			panic(err)
		}
		return func() string { return token }
	}
	none := func() string { return "" }

	statusIP, deniedIP, floodIP := nextIP(), nextIP(), nextIP()
	validator := must(b.user("staff_tester"))
	lister := must(b.user("staff_tester"))
	monitor := must(b.user("staff_tester"))
	historian := must(b.user("staff_tester"))
	loginName, loginPassword, _, err := b.user("staff_tester")
	if err != nil {
		panic(err)
	}

	return []class{
		{"GET /api/traffic-manager?status=true (load cached)", "0", 200,
			fixed(http.MethodGet, "/api/traffic-manager?status=true", nil, none, statusIP)},
		{"GET /api/traffic-manager (front door, load cached)", "1", 200,
			func() (*http.Request, error) {
				return b.request(http.MethodGet, "/api/traffic-manager", nil, "", nextIP())
			}},
		{"GET /api/auth validate, Bearer, touch not due", "1", 200,
			fixed(http.MethodGet, "/api/auth", nil, validator, "198.18.1.1")},
		{"GET /api/sessions, Bearer", "2", 200,
			fixed(http.MethodGet, "/api/sessions", nil, lister, "198.18.1.2")},
		{"POST /api/auth login (plus argon2id)", "2", 200,
			fixed(http.MethodPost, "/api/auth", map[string]any{"action": "login", "username": loginName, "password": loginPassword}, none, "198.18.1.3")},
		{"GET /api/system-monitor?endpoint=overview", "2", 200,
			fixed(http.MethodGet, "/api/system-monitor?endpoint=overview", nil, monitor, "198.18.1.4")},
		{"GET /api/system-monitor?endpoint=history&hours=24", "2", 200,
			fixed(http.MethodGet, "/api/system-monitor?endpoint=history&hours=24", nil, historian, "198.18.1.5")},
		{"GET /api/traffic-manager, client over its limit (denied)", "0", 429,
			b.exhausted(http.MethodGet, "/api/traffic-manager", deniedIP)},
		{"GET /api/sessions, random well-formed token", "-", 401,
			func() (*http.Request, error) {
				return b.request(http.MethodGet, "/api/sessions", nil, randomToken(), nextIP())
			}},
		{"GET /api/sessions, random token, client over its api limit", "0", 429,
			b.floodedWithTokens(floodIP)},
	}
}

// exhausted spends the client's budget first, so every measured request is a deny.
func (b *bench) exhausted(method, path, ip string) func() (*http.Request, error) {
	spent := false
	return func() (*http.Request, error) {
		if !spent {
			spent = true
			for i := 0; i < 1000; i++ {
				req, _ := b.request(method, path, nil, "", ip)
				status, _, err := b.do(req)
				if err != nil {
					return nil, err
				}
				if status == http.StatusTooManyRequests {
					break
				}
			}
		}
		return b.request(method, path, nil, "", ip)
	}
}

// floodedWithTokens is a client sending a fresh random token on every
// request, measured once it has spent its api budget: a forged-token flood
// must cost no more than the limiter allows that client.
func (b *bench) floodedWithTokens(ip string) func() (*http.Request, error) {
	spent := false
	return func() (*http.Request, error) {
		if !spent {
			spent = true
			for i := 0; i < 5000; i++ {
				req, _ := b.request(http.MethodGet, "/api/sessions", nil, randomToken(), ip)
				status, _, err := b.do(req)
				if err != nil {
					return nil, err
				}
				if status == http.StatusTooManyRequests {
					break
				}
			}
		}
		return b.request(http.MethodGet, "/api/sessions", nil, randomToken(), ip)
	}
}

// --- measuring ------------------------------------------------------------------------------

type result struct {
	class         class
	median0, medD time.Duration
	delay         time.Duration
	requests      int
	calls, ru, wu float64 // per request
	roundTrips    float64
	callsByOp     map[string]float64
	tableUnits    map[string]dbproxy.Units // per request, by table
}

func (b *bench) measure(c class, rounds, n int, delay time.Duration) (result, error) {
	r := result{class: c, delay: delay, callsByOp: map[string]float64{}, tableUnits: map[string]dbproxy.Units{}}
	send := func() (time.Duration, error) {
		req, err := c.next()
		if err != nil {
			return 0, err
		}
		start := time.Now()
		status, body, err := b.do(req)
		d := time.Since(start)
		if err != nil {
			return 0, err
		}
		if status != c.status {
			return 0, fmt.Errorf("status %d, want %d: %v", status, c.status, body)
		}
		return d, nil
	}
	// Warm the instance: caches (load, roles, validated tokens) as a busy one has them.
	b.proxy.SetDelay(0)
	for i := 0; i < 3; i++ {
		if _, err := send(); err != nil {
			return r, err
		}
	}
	var at0, atD []time.Duration
	var calls, ru, wu float64
	for round := 0; round < rounds; round++ {
		sides := []time.Duration{0, delay}
		if round%2 == 1 {
			sides = []time.Duration{delay, 0}
		}
		for _, d := range sides {
			b.proxy.SetDelay(d)
			b.proxy.Reset()
			for i := 0; i < n; i++ {
				lat, err := send()
				if err != nil {
					return r, err
				}
				if d == 0 {
					at0 = append(at0, lat)
				} else {
					atD = append(atD, lat)
				}
			}
			s := b.proxy.Stats()
			calls += float64(s.Calls)
			ru += s.Units.Read
			wu += s.Units.Write
			for op, k := range s.Operations {
				r.callsByOp[op] += float64(k)
			}
			for t, u := range s.TableUnits {
				sum := r.tableUnits[t]
				sum.Read += u.Read
				sum.Write += u.Write
				r.tableUnits[t] = sum
			}
			r.requests += n
		}
	}
	b.proxy.SetDelay(0)
	r.median0, r.medD = medianDuration(at0), medianDuration(atD)
	r.roundTrips = float64(r.medD-r.median0) / float64(delay)
	per := float64(r.requests)
	r.calls, r.ru, r.wu = calls/per, ru/per, wu/per
	for op := range r.callsByOp {
		r.callsByOp[op] /= per
	}
	for t, u := range r.tableUnits {
		r.tableUnits[t] = dbproxy.Units{Read: u.Read / per, Write: u.Write / per}
	}
	return r, nil
}

func medianDuration(ds []time.Duration) time.Duration {
	fs := make([]float64, len(ds))
	for i, d := range ds {
		fs[i] = float64(d)
	}
	return time.Duration(benchdoc.Median(fs))
}

func (r result) row() string {
	ops := make([]string, 0, len(r.callsByOp))
	for op, k := range r.callsByOp {
		ops = append(ops, fmt.Sprintf("%s %.2g", op, k))
	}
	slices.Sort(ops)
	rt := r.roundTrips
	if math.Abs(rt) < 0.05 {
		rt = 0 // not "-0.0": both medians are the same cached answer
	}
	return fmt.Sprintf("| %.2f | %.2f | %.2f | %.1f (target %s) | %.1f / %.1f ms | %s |",
		r.calls, r.ru, r.wu, rt, r.class.target,
		float64(r.median0.Microseconds())/1000, float64(r.medD.Microseconds())/1000, strings.Join(ops, ", "))
}

func render(rs []result, rounds, n int, delay time.Duration, load0 string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured by `make bench-path` (cmd/benchpath) %s.\n", benchdoc.Machine(load0))
	fmt.Fprintf(&b, "Each class: %d rounds of %d requests at D = 0 and %d at D = %v (sides alternating), after 3 warm-up requests;\n", rounds, n, n, delay)
	b.WriteString("round trips = (median at D − median at 0) ÷ D. Calls and units per request are the proxy's counts (units as DynamoDB Local reports them).\n\n")
	b.WriteString("| request (warm instance) | DynamoDB calls | read units | write units | round trips on the critical path | median latency at 0 / at D | calls by operation |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s %s\n", r.class.name, r.row())
	}
	b.WriteString(renderTables(rs))
	return b.String()
}

// renderTables splits each class's units by table (read / write units per
// request): the measured input of docs/capacity.md's per-table model.
func renderTables(rs []result) string {
	var names []string
	for _, r := range rs {
		for t := range r.tableUnits {
			if !slices.Contains(names, t) {
				names = append(names, t)
			}
		}
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("\nThe same requests' units by table (read / write units per request; the counter flush's share and the load meter's reads included, as this run's rate made them):\n\n| request |")
	for _, t := range names {
		fmt.Fprintf(&b, " %s |", strings.TrimPrefix(t, "zenith-"))
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(names)) + "\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s |", r.class.name)
		for _, t := range names {
			u, ok := r.tableUnits[t]
			if !ok || (u.Read == 0 && u.Write == 0) {
				b.WriteString(" – |")
				continue
			}
			fmt.Fprintf(&b, " %.2f / %.2f |", u.Read, u.Write)
		}
		b.WriteString("\n")
	}
	return b.String()
}

const alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func randomString(n int) string {
	out := make([]byte, n)
	for i := range out {
		k, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alnum))))
		out[i] = alnum[k.Int64()]
	}
	return string(out)
}

// randomToken is well formed for a user id that exists (the master), so it
// passes every check that needs no store: only a read can reject it.
func randomToken() string {
	const id = "bench_admin"
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz_"
	var digits strings.Builder
	for i := 0; i < len(id); i++ {
		k := strings.IndexByte(alphabet, id[i])
		fmt.Fprintf(&digits, "%02d", k)
	}
	return "session_" + digits.String() + "_" + randomString(44)
}
