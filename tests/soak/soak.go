// Package soak runs mixed traffic (logins, validations, session lists and
// ends, front-door checks, status probes, monitor reads, load overrides,
// failed logins) through the local API server (cmd/localapi, several
// instances of each function) at a given concurrency for a given time, with
// shared/dbproxy faults injected between the server and DynamoDB Local for
// part of the run, and then proves that nothing was lost:
//
//   - zero unexpected 5xx: a 503 SERVICE_UNAVAILABLE only while a fault is
//     on (and for the store breaker's cooldown after), never another 5xx;
//   - zero lost sessions: every session created and not ended validates at
//     the end, and no ended one does;
//   - the limiter within its bound: no client admitted more than C + ⌊d/T⌋
//     over any interval of a healthy stretch (instances × that while a fault
//     makes each instance fall back to its own bucket);
//   - counted totals: the minute counters never count more requests than
//     were sent, and count every request sent outside the fault windows;
//   - memory and goroutines flat: the server's last stretch is compared with
//     its first;
//   - nothing secret in any log line: no token, password or full client IP
//     the run used appears in what the server and the functions wrote.
//
// cmd/soak runs it (`make soak`: 60 s at concurrency 32); tests/soak's test
// runs a ~10 s version in `make test`.
package soak

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/samtemplate"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/tables"
	"github.com/zenithfresh/zenith-serverless/tests/localserver"
)

// Options are a run's parameters.
type Options struct {
	Endpoint    string        // DynamoDB Local (required)
	Bin         string        // the localapi binary (built when empty)
	Duration    time.Duration // the mixed traffic's length
	Concurrency int           // clients sending at once
	Instances   int           // instances of each function (LOCALAPI_INSTANCES)
	// Faults lists the faults injected, one after the other, each for
	// FaultFor, spread over the middle of the run with healthy stretches
	// between them; empty means a healthy run.
	Faults   []dbproxy.Fault
	FaultFor time.Duration
	// DBTimeout is the functions' DB_TIMEOUT.
	DBTimeout time.Duration
	// FlushBound is how late a counted request may reach the minute
	// counters (the metrics flush interval, once there is one); the counters
	// are read this long after the traffic stops.
	FlushBound time.Duration
	// SampleEvery is how often the server's RSS and goroutines are read.
	SampleEvery time.Duration
	Users       int // staff users logging in and out
	Log         io.Writer
}

// DefaultFaults are the faults a run injects, one window each: an outage
// (connections refused), calls hanging past DB_TIMEOUT, throttling of a part
// of the calls, answers cut after DynamoDB applied the call, and 500s.
func DefaultFaults() []dbproxy.Fault {
	return []dbproxy.Fault{
		{Kind: dbproxy.Refuse},
		{Kind: dbproxy.Hang},
		{Kind: dbproxy.Throttle, Fraction: 0.3},
		{Kind: dbproxy.Cut, Fraction: 0.3},
		{Kind: dbproxy.ServerError, Fraction: 0.5},
	}
}

// Frontdoor policy of the run: C = 70 and T = 1 s, so the greedy clients
// reach their bound many times.
const (
	frontdoorRPM   = 60
	frontdoorBurst = 10
	greedyClients  = 4
)

// Summary is what a run measured and found.
type Summary struct {
	Duration        time.Duration
	Concurrency     int
	Instances       int
	Requests        map[string]int64 // by action
	Answers         map[string]int64 // by "status code"
	Sent            int64            // every request sent to the server and answered
	Unanswered      int64            // sent without an answer: in flight when the run ended, or failed in transport
	SentOutside     int64            // sent and answered outside every fault window (+ cooldown and flush bound)
	Counted         int64            // requests in the minute counters
	FaultsInjected  map[string]int64 // by kind, from the proxy
	FaultWindows    []string
	SessionsChecked int
	SessionsLost    int
	SessionsUnknown int // a logout or end-all of it answered 503: either outcome is right
	EndedChecked    int
	EndedAlive      int
	LimiterChecked  int           // admitted front-door requests checked against the bound
	Stretch         time.Duration // the first and last stretch compared: a minute, or a third of a shorter run
	RSSFirst        int64
	RSSLast         int64
	HeapFirst       uint64
	HeapLast        uint64
	Timeline        []string
	GoroutinesFirst int
	GoroutinesLast  int
	LogLines        int
	SecretsChecked  int
	Violations      []string
}

// OK reports whether the run met every property.
func (s *Summary) OK() bool { return len(s.Violations) == 0 }

func (s *Summary) violate(format string, args ...any) {
	s.Violations = append(s.Violations, fmt.Sprintf(format, args...))
}

// Print writes the summary as `make soak` shows it.
func (s *Summary) Print(w io.Writer) {
	fmt.Fprintf(w, "soak: %s of mixed traffic at concurrency %d, %d instances of each function\n", s.Duration.Round(time.Second), s.Concurrency, s.Instances)
	fmt.Fprintf(w, "requests by route (%d sent):\n", s.Sent)
	for _, k := range sortedKeys(s.Requests) {
		fmt.Fprintf(w, "  %-28s %7d\n", k, s.Requests[k])
	}
	fmt.Fprintln(w, "answers by code:")
	for _, k := range sortedKeys(s.Answers) {
		fmt.Fprintf(w, "  %-28s %7d\n", k, s.Answers[k])
	}
	fmt.Fprintln(w, "faults injected and survived:")
	for _, wdw := range s.FaultWindows {
		fmt.Fprintf(w, "  %s\n", wdw)
	}
	for _, k := range sortedKeys(s.FaultsInjected) {
		fmt.Fprintf(w, "  %-28s %7d calls\n", k, s.FaultsInjected[k])
	}
	fmt.Fprintf(w, "counted: %d requests in the minute counters; %d sent and answered (%d of them outside the fault windows), %d sent without an answer (in flight when the run ended)\n", s.Counted, s.Sent, s.SentOutside, s.Unanswered)
	fmt.Fprintf(w, "sessions checked: %d, lost: %d; ended sessions checked: %d, still valid: %d; not checked (their end answered 503): %d\n",
		s.SessionsChecked, s.SessionsLost, s.EndedChecked, s.EndedAlive, s.SessionsUnknown)
	fmt.Fprintf(w, "limiter: %d admitted front-door requests checked against C + ⌊d/T⌋ (C = %d, T = %s)\n", s.LimiterChecked, frontdoorRPM+frontdoorBurst, time.Minute/frontdoorRPM)
	stretch := "minute"
	if s.Stretch < time.Minute {
		stretch = s.Stretch.Round(time.Second).String() + " (a third of the run)"
	}
	fmt.Fprintf(w, "server, first/last %s (healthy stretches): RSS %.1f / %.1f MiB, live heap %.1f / %.1f MiB, goroutines %d / %d\n",
		stretch, float64(s.RSSFirst)/(1<<20), float64(s.RSSLast)/(1<<20), float64(s.HeapFirst)/(1<<20), float64(s.HeapLast)/(1<<20),
		s.GoroutinesFirst, s.GoroutinesLast)
	for _, l := range s.Timeline {
		fmt.Fprintf(w, "  %s\n", l)
	}
	fmt.Fprintf(w, "logs: %d lines grepped for %d secrets (tokens, passwords, client IPs)\n", s.LogLines, s.SecretsChecked)
	if s.OK() {
		fmt.Fprintln(w, "result: PASS (zero unexpected 5xx, sessions lost: 0)")
		return
	}
	fmt.Fprintf(w, "result: FAIL (%d violations)\n", len(s.Violations))
	for _, v := range s.Violations {
		fmt.Fprintf(w, "  - %s\n", v)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Run starts the server behind a proxy, sends the traffic and checks it.
// An error means the run could not be made; a violated property is in the
// Summary.
func Run(ctx context.Context, o Options) (*Summary, error) {
	r, err := newRun(ctx, o)
	if err != nil {
		return nil, err
	}
	defer r.close()
	return r.run(ctx)
}

// secret is a string that must never appear in a log line.
type secret struct{ kind, value string }

// session is one login's token in the run's ledger.
type session struct {
	token string
	user  string
	ended bool
	// unknown: a logout or end-all of it answered something else than
	// success (a 503 may come after some of the work was done), so whether
	// it is still valid is not known.
	unknown bool
}

// window is a stretch of the run during which a fault was on.
type window struct {
	fault      dbproxy.Fault
	start, end time.Time
}

type run struct {
	o      Options
	proxy  *dbproxy.Proxy
	server *localserver.Server
	db     *dynamodb.Client
	names  config.Tables
	client *http.Client
	start  time.Time

	adminUser, adminPassword string
	adminToken               string
	users                    []string
	passwords                map[string]string

	mu       sync.Mutex
	sessions []*session
	byUser   map[string][]*session
	userLock map[string]*sync.Mutex // login and end-all of one user never overlap
	secrets  []secret
	windows  []window
	sends    []sent        // every request's span
	spans503 []unavailable // every 503 SERVICE_UNAVAILABLE, checked against the windows at the end
	admitted map[string][]stamp
	requests map[string]int64
	answers  map[string]int64
	bad5xx   []string
	other    []string
	sentN    atomic.Int64
	// unanswered counts requests whose answer never came (cancelled in
	// flight when the run ended): the server may have counted them.
	unanswered atomic.Int64
	nudged     int64 // the last nudge's requests, whose counts may still be pending
}

// sent is one request's time span, for the counted-totals check.
type sent struct{ from, to time.Time }

// unavailable is one 503 SERVICE_UNAVAILABLE answer.
type unavailable struct {
	span sent
	what string
}

// stamp is one admitted front-door request's span.
type stamp struct{ from, to time.Time }

func newRun(ctx context.Context, o Options) (*run, error) {
	if o.Endpoint == "" {
		return nil, fmt.Errorf("soak: no DynamoDB endpoint")
	}
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	if o.Instances < 1 {
		o.Instances = 1
	}
	if o.Users < 1 {
		o.Users = 8
	}
	if o.DBTimeout <= 0 {
		o.DBTimeout = time.Second
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	r := &run{
		o: o, passwords: map[string]string{}, byUser: map[string][]*session{}, userLock: map[string]*sync.Mutex{},
		admitted: map[string][]stamp{}, requests: map[string]int64{}, answers: map[string]int64{},
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency + 8}},
	}
	r.names = config.DefaultTables.WithPrefix("soak" + randomHex(4) + "-")
	ac, err := store.LoadAWS(ctx, "us-east-1", o.Endpoint)
	if err != nil {
		return nil, err
	}
	tmpl, err := samtemplate.Embedded()
	if err != nil {
		return nil, err
	}
	if _, err := tables.Bootstrap(ctx, store.NewAdminDynamoDB(ac, o.Endpoint), tmpl.Tables, r.names); err != nil {
		return nil, fmt.Errorf("create tables: %w", err)
	}
	r.db = store.NewDynamoDB(ac, o.Endpoint, 30*time.Second)
	if r.proxy, err = dbproxy.New(o.Endpoint); err != nil {
		return nil, err
	}
	bin := o.Bin
	if bin == "" {
		return nil, fmt.Errorf("soak: no localapi binary (localserver.Build)")
	}
	r.adminUser, r.adminPassword = "soak_admin", randomPassword()
	r.secret("master password", r.adminPassword)
	for i := range greedyClients {
		r.secret("client IP", greedyIP(i))
	}
	debugPort, err := localserver.FreePort()
	if err != nil {
		return nil, err
	}
	env := r.names.Env()
	for k, v := range map[string]string{
		"DYNAMODB_ENDPOINT": r.proxy.URL(), "AWS_REGION": "us-east-1",
		"MASTER_USERNAME": r.adminUser, "MASTER_PASSWORD": r.adminPassword,
		"DB_TIMEOUT":           strconv.Itoa(int(o.DBTimeout / time.Millisecond)),
		"TRUSTED_PROXY_CIDRS":  "127.0.0.1/32", // the clients' X-Forwarded-For names them
		"RATE_LIMIT_RPM":       strconv.Itoa(frontdoorRPM),
		"RATE_LIMIT_BURST":     strconv.Itoa(frontdoorBurst),
		"RATE_LIMIT_API_RPM":   "60000",
		"RATE_LIMIT_API_BURST": "6000",
		"TRAFFIC_CAPACITY_RPM": "1000000000", // no load shedding: its 503s are another suite's
		"LOCALAPI_INSTANCES":   strconv.Itoa(o.Instances),
		"LOCALAPI_DEBUG_ADDR":  "127.0.0.1:" + strconv.Itoa(debugPort),
	} {
		env[k] = v
	}
	if r.server, err = localserver.Start(ctx, bin, env); err != nil {
		r.proxy.Close()
		return nil, err
	}
	return r, nil
}

func (r *run) close() {
	if r.server != nil && !r.server.Exited() {
		r.server.Kill()
	}
	if r.proxy != nil {
		r.proxy.Close()
	}
}

func (r *run) secret(kind, value string) {
	r.mu.Lock()
	r.secrets = append(r.secrets, secret{kind, value})
	r.mu.Unlock()
}

// answer is a decoded response.
type answer struct {
	status int
	code   string
	body   map[string]any
	header http.Header
}

// do sends one request as a client at clientIP (X-Forwarded-For; the server
// trusts its loopback peer) and records it under action.
func (r *run) do(ctx context.Context, action, method, path, clientIP, token string, body any) (answer, sent, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.server.URL+path, rd)
	if err != nil {
		return answer{}, sent{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Forwarded-For", clientIP)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	sp := sent{from: time.Now()}
	resp, err := r.client.Do(req)
	if err != nil {
		r.unanswered.Add(1)
		return answer{}, sp, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	sp.to = time.Now()
	a := answer{status: resp.StatusCode, header: resp.Header}
	_ = json.Unmarshal(raw, &a.body)
	for _, c := range resp.Cookies() {
		// The session cookie and any other (a device cookie): never in a log.
		if len(c.Value) >= 16 {
			r.secret("cookie "+c.Name, c.Value)
		}
	}
	a.code, _ = a.body["code"].(string)
	r.sentN.Add(1)
	r.mu.Lock()
	r.requests[action]++
	key := strconv.Itoa(a.status)
	if a.code != "" {
		key += " " + a.code
	}
	r.answers[key]++
	r.sends = append(r.sends, sp)
	switch {
	case a.status == http.StatusServiceUnavailable && a.code == "SERVICE_UNAVAILABLE":
		r.spans503 = append(r.spans503, unavailable{sp, fmt.Sprintf("%s %s (%s) at +%s", method, path, action, sp.from.Sub(r.start).Round(time.Millisecond))})
	case a.status >= 500:
		r.bad5xx = append(r.bad5xx, fmt.Sprintf("%s %s (%s) at +%s: %d %s", method, path, action, sp.from.Sub(r.start).Round(time.Millisecond), a.status, raw))
	}
	r.mu.Unlock()
	return a, sp, nil
}

func (r *run) note(format string, args ...any) {
	r.mu.Lock()
	if len(r.other) < 50 {
		r.other = append(r.other, fmt.Sprintf(format, args...))
	}
	r.mu.Unlock()
}

// setup logs the admin in and creates the staff users.
func (r *run) setup(ctx context.Context) error {
	login := func(user, password string) (string, error) {
		for attempt := 0; attempt < 10; attempt++ {
			a, _, err := r.do(ctx, "setup", "POST", "/api/auth", "127.0.0.1", "", map[string]any{"action": "login", "username": user, "password": password})
			if err != nil {
				return "", err
			}
			if a.status == http.StatusOK {
				tok, _ := a.body["session"].(map[string]any)["id"].(string)
				r.secret("token", tokenSecret(tok))
				return tok, nil
			}
			time.Sleep(time.Second)
		}
		return "", fmt.Errorf("login %s failed", user)
	}
	var err error
	if r.adminToken, err = login(r.adminUser, r.adminPassword); err != nil {
		return err
	}
	for i := range r.o.Users {
		u := fmt.Sprintf("soak_user_%d", i)
		pw := randomPassword()
		r.secret("password", pw)
		a, _, err := r.do(ctx, "setup", "POST", "/api/auth/users", "127.0.0.1", r.adminToken,
			map[string]any{"username": u, "password": pw, "role": "staff_tester", "name": "Soak " + strconv.Itoa(i)})
		if err != nil {
			return err
		}
		if a.status != http.StatusCreated {
			return fmt.Errorf("create %s: %d %v", u, a.status, a.body)
		}
		r.users = append(r.users, u)
		r.passwords[u] = pw
		r.userLock[u] = &sync.Mutex{}
	}
	return nil
}

// clientIP is a documentation address, v4 or v6, a fresh client per call.
func (r *run) clientIP(rng *mrand.Rand) string {
	var ip string
	if rng.IntN(4) == 0 {
		ip = fmt.Sprintf("2001:db8:%x:%x::%x", rng.IntN(0xffff), rng.IntN(0xffff), 1+rng.IntN(0xfffe))
	} else {
		ip = fmt.Sprintf("203.0.113.%d", 1+rng.IntN(254))
	}
	r.secret("client IP", ip)
	return ip
}

func greedyIP(i int) string { return fmt.Sprintf("198.51.100.%d", 10+i) }

// liveSession picks a session not known to be ended.
func (r *run) liveSession(rng *mrand.Rand) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	for range 8 {
		if len(r.sessions) == 0 {
			return nil
		}
		s := r.sessions[rng.IntN(len(r.sessions))]
		if !s.ended && !s.unknown {
			return s
		}
	}
	return nil
}

// action is one kind of request the clients send, with its weight.
type action struct {
	name   string
	weight int
	do     func(ctx context.Context, r *run, rng *mrand.Rand) error
}

var actions = []action{
	{"login", 8, func(ctx context.Context, r *run, rng *mrand.Rand) error {
		u := r.users[rng.IntN(len(r.users))]
		lock := r.userLock[u]
		lock.Lock() // an end-all of this user cannot race the login
		defer lock.Unlock()
		a, _, err := r.do(ctx, "login", "POST", "/api/auth", r.clientIP(rng), "", map[string]any{"action": "login", "username": u, "password": r.passwords[u]})
		if err != nil || a.status != http.StatusOK {
			return err
		}
		tok, _ := a.body["session"].(map[string]any)["id"].(string)
		if tok == "" {
			r.note("login 200 without a token: %v", a.body)
			return nil
		}
		r.secret("token", tokenSecret(tok))
		s := &session{token: tok, user: u}
		r.mu.Lock()
		r.sessions = append(r.sessions, s)
		r.byUser[u] = append(r.byUser[u], s)
		r.mu.Unlock()
		return nil
	}},
	{"failed login", 2, func(ctx context.Context, r *run, rng *mrand.Rand) error {
		pw := randomPassword()
		r.secret("wrong password", pw)
		_, _, err := r.do(ctx, "failed login", "POST", "/api/auth", r.clientIP(rng), "", map[string]any{"action": "login", "username": r.users[rng.IntN(len(r.users))] + "_x", "password": pw})
		return err
	}},
	{"validate", 16, func(ctx context.Context, r *run, rng *mrand.Rand) error {
		s := r.liveSession(rng)
		if s == nil {
			return nil
		}
		if rng.IntN(2) == 0 {
			_, _, err := r.do(ctx, "validate (POST)", "POST", "/api/auth", r.clientIP(rng), "", map[string]any{"action": "validate", "sessionId": s.token})
			return err
		}
		_, _, err := r.do(ctx, "validate (GET)", "GET", "/api/auth", r.clientIP(rng), s.token, nil)
		return err
	}},
	{"session list", 8, func(ctx context.Context, r *run, rng *mrand.Rand) error {
		s := r.liveSession(rng)
		if s == nil {
			return nil
		}
		_, _, err := r.do(ctx, "session list", "GET", "/api/sessions?limit=10", r.clientIP(rng), s.token, nil)
		return err
	}},
	{"logout", 3, func(ctx context.Context, r *run, rng *mrand.Rand) error {
		s := r.liveSession(rng)
		if s == nil {
			return nil
		}
		a, _, err := r.do(ctx, "logout", "POST", "/api/auth", r.clientIP(rng), s.token, map[string]any{"action": "logout"})
		r.mu.Lock()
		if err == nil && a.status == http.StatusOK && a.body["success"] == true {
			s.ended = true
		} else {
			s.unknown = true
		}
		r.mu.Unlock()
		return err
	}},
	{"end all sessions", 1, func(ctx context.Context, r *run, rng *mrand.Rand) error {
		// Only the last user ends all of theirs: the others keep sessions to check.
		u := r.users[len(r.users)-1]
		lock := r.userLock[u]
		lock.Lock()
		defer lock.Unlock()
		r.mu.Lock()
		var tok string
		for _, s := range r.byUser[u] {
			if !s.ended {
				tok = s.token
			}
		}
		r.mu.Unlock()
		if tok == "" {
			return nil
		}
		a, _, err := r.do(ctx, "end all sessions", "DELETE", "/api/sessions", r.clientIP(rng), tok, nil)
		r.mu.Lock()
		for _, s := range r.byUser[u] {
			if err == nil && a.status == http.StatusOK {
				s.ended = true
			} else if !s.ended {
				s.unknown = true
			}
		}
		r.mu.Unlock()
		return err
	}},
	{"front door", 20, func(ctx context.Context, r *run, rng *mrand.Rand) error {
		_, _, err := r.do(ctx, "front door", "GET", "/api/traffic-manager", r.clientIP(rng), "", nil)
		return err
	}},
	{"front door (greedy)", 12, func(ctx context.Context, r *run, rng *mrand.Rand) error {
		ip := greedyIP(rng.IntN(greedyClients))
		a, sp, err := r.do(ctx, "front door (greedy)", "GET", "/api/traffic-manager", ip, "", nil)
		if err == nil && a.status == http.StatusOK {
			r.mu.Lock()
			r.admitted[ip] = append(r.admitted[ip], stamp(sp))
			r.mu.Unlock()
		}
		return err
	}},
	{"status", 4, func(ctx context.Context, r *run, rng *mrand.Rand) error {
		_, _, err := r.do(ctx, "status", "GET", "/api/traffic-manager?status=true", r.clientIP(rng), "", nil)
		return err
	}},
	{"monitor", 8, func(ctx context.Context, r *run, rng *mrand.Rand) error {
		s := r.liveSession(rng)
		if s == nil {
			return nil
		}
		ep := []string{"overview", "metrics", "history", "health", "alerts"}[rng.IntN(5)]
		_, _, err := r.do(ctx, "monitor "+ep, "GET", "/api/system-monitor?endpoint="+ep, r.clientIP(rng), s.token, nil)
		return err
	}},
	{"override", 2, func(ctx context.Context, r *run, rng *mrand.Rand) error {
		_, _, err := r.do(ctx, "override", "POST", "/api/traffic-manager", r.clientIP(rng), r.adminToken,
			map[string]any{"simulateLoad": true, "connections": rng.IntN(10), "load": 0.001})
		return err
	}},
}

func pick(rng *mrand.Rand) action {
	total := 0
	for _, a := range actions {
		total += a.weight
	}
	n := rng.IntN(total)
	for _, a := range actions {
		if n < a.weight {
			return a
		}
		n -= a.weight
	}
	return actions[0]
}

// sample is one reading of the server's figures.
type sample struct {
	at    time.Time
	stats localserver.Stats
}

func (r *run) run(ctx context.Context) (*Summary, error) {
	sum := &Summary{Duration: r.o.Duration, Concurrency: r.o.Concurrency, Instances: r.o.Instances}
	r.start = time.Now()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	counterFrom := r.start.Truncate(time.Minute)

	// The server's figures, every SampleEvery.
	var samples []sample
	var sampleMu sync.Mutex
	sampleCtx, stopSampling := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(r.o.SampleEvery)
		defer t.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
				if st, err := r.server.Stats(); err == nil {
					sampleMu.Lock()
					samples = append(samples, sample{time.Now(), st})
					sampleMu.Unlock()
				}
			}
		}
	}()

	trafficStart := time.Now()
	deadline := trafficStart.Add(r.o.Duration)
	trafficCtx, stopTraffic := context.WithDeadline(ctx, deadline)
	defer stopTraffic()

	// The faults: spread over the middle 80% of the run, a healthy stretch before each.
	var faultWG sync.WaitGroup
	if n := len(r.o.Faults); n > 0 {
		faultWG.Add(1)
		go func() {
			defer faultWG.Done()
			slot := time.Duration(float64(r.o.Duration) * 0.8 / float64(n))
			for i, f := range r.o.Faults {
				at := trafficStart.Add(r.o.Duration/10 + time.Duration(i)*slot + (slot-r.o.FaultFor)/2)
				select {
				case <-trafficCtx.Done():
					return
				case <-time.After(time.Until(at)):
				}
				w := window{fault: f, start: time.Now()}
				if err := r.proxy.SetFault(f); err != nil {
					r.note("set fault %s: %v", f.Kind, err)
					continue
				}
				select {
				case <-trafficCtx.Done():
				case <-time.After(r.o.FaultFor):
				}
				_ = r.proxy.ClearFault(f.Kind)
				w.end = time.Now()
				r.mu.Lock()
				r.windows = append(r.windows, w)
				r.mu.Unlock()
			}
		}()
	}

	var wg sync.WaitGroup
	var errs atomic.Int64
	for i := range r.o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for trafficCtx.Err() == nil {
				a := pick(rng)
				if err := a.do(trafficCtx, r, rng); err != nil && trafficCtx.Err() == nil {
					if errs.Add(1) <= 5 {
						r.note("%s: %v", a.name, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	faultWG.Wait()
	_ = r.proxy.ClearFaults()
	trafficEnd := time.Now()
	sampleMu.Lock()
	run := append([]sample(nil), samples...)
	sampleMu.Unlock()

	// Let the breakers close and the last counts reach the counters.
	time.Sleep(store.BreakerCooldown + r.o.FlushBound + time.Second)
	r.checkSessions(ctx, sum)
	stopSampling()
	// Two nudges, a flush bound apart: the first makes every instance flush
	// what the run left, the second what the first added.
	r.nudge(ctx)
	time.Sleep(r.o.FlushBound + 500*time.Millisecond)
	r.nudged = r.nudge(ctx)
	time.Sleep(r.o.FlushBound + 500*time.Millisecond)

	r.checkLimiter(sum)
	r.checkCounters(ctx, sum, counterFrom)
	r.checkMemory(sum, run, trafficStart, trafficEnd)
	stats := r.proxy.Stats()
	sum.FaultsInjected = map[string]int64{}
	for k, v := range stats.Faults {
		sum.FaultsInjected[string(k)] = v
	}
	for _, w := range r.windows {
		sum.FaultWindows = append(sum.FaultWindows, fmt.Sprintf("%-12s %s from +%s to +%s", w.fault.Kind, describe(w.fault),
			w.start.Sub(trafficStart).Round(100*time.Millisecond), w.end.Sub(trafficStart).Round(100*time.Millisecond)))
	}
	if len(r.o.Faults) > 0 && len(r.windows) < len(r.o.Faults) {
		sum.violate("only %d of %d faults were injected (the run is too short for its faults)", len(r.windows), len(r.o.Faults))
	}
	for k, v := range stats.Faults {
		if v == 0 && slices.ContainsFunc(r.o.Faults, func(f dbproxy.Fault) bool { return f.Kind == k }) {
			sum.violate("the %s fault hit no call", k)
		}
	}

	// The 5xx: any but a 503 SERVICE_UNAVAILABLE, or a 503 outside the fault windows.
	r.check5xx(sum)
	for _, n := range r.other {
		sum.violate("%s", n)
	}

	// Stop the server, then grep everything it wrote.
	if err := r.server.Stop(); err != nil {
		sum.violate("localapi did not stop cleanly: %v", err)
	}
	r.checkLogs(sum)

	r.mu.Lock()
	sum.Requests, sum.Answers = r.requests, r.answers
	r.mu.Unlock()
	sum.Sent = r.sentN.Load()
	return sum, nil
}

func describe(f dbproxy.Fault) string {
	var parts []string
	if f.Fraction > 0 && f.Fraction < 1 {
		parts = append(parts, fmt.Sprintf("%.0f%% of calls", f.Fraction*100))
	} else {
		parts = append(parts, "every call")
	}
	if len(f.Tables) > 0 {
		parts = append(parts, "on "+strings.Join(f.Tables, ","))
	}
	return strings.Join(parts, " ")
}

// inWindow reports whether a request overlapped a fault window, widened by
// the breaker's cooldown and DB_TIMEOUT after it (a call that started inside
// may end after).
func (r *run) inWindow(from, to time.Time, extra time.Duration) bool {
	for _, w := range r.windows {
		if to.After(w.start) && from.Before(w.end.Add(store.BreakerCooldown+r.o.DBTimeout+extra)) {
			return true
		}
	}
	return false
}

func (r *run) check5xx(sum *Summary) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range r.spans503 {
		if !r.inWindow(u.span.from, u.span.to, 0) {
			r.bad5xx = append(r.bad5xx, "503 SERVICE_UNAVAILABLE with no fault on: "+u.what)
		}
	}
	for i, b := range r.bad5xx {
		if i == 20 {
			sum.violate("... and %d more unexpected 5xx", len(r.bad5xx)-20)
			break
		}
		sum.violate("unexpected 5xx: %s", b)
	}
}

// nudge sends a cheap request to every instance of every function (round
// robin), so an instance that flushes its counts when a request comes in
// does so; it returns how many it sent.
func (r *run) nudge(ctx context.Context) int64 {
	var n int64
	for _, path := range []string{"/api/auth", "/api/sessions", "/api/traffic-manager?status=true", "/api/system-monitor"} {
		for range r.o.Instances {
			if _, _, err := r.do(ctx, "flush nudge", "GET", path, "192.0.2.2", "", nil); err == nil {
				n++
			}
		}
	}
	return n
}

// checkSessions validates every session of the ledger: the live ones must
// validate (200), the ended ones must not (401 INVALID_SESSION).
func (r *run) checkSessions(ctx context.Context, sum *Summary) {
	r.mu.Lock()
	all := append([]*session(nil), r.sessions...)
	r.mu.Unlock()
	type result struct {
		s      *session
		status int
		code   string
	}
	results := make(chan result, len(all))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var a answer
			for attempt := 0; attempt < 5; attempt++ {
				var err error
				a, _, err = r.do(ctx, "final validation", "GET", "/api/auth", "192.0.2.1", s.token, nil)
				if err == nil && a.status != http.StatusServiceUnavailable && a.status != http.StatusTooManyRequests {
					break
				}
				time.Sleep(store.BreakerCooldown)
			}
			results <- result{s, a.status, a.code}
		}()
	}
	wg.Wait()
	close(results)
	for res := range results {
		if res.s.unknown && !res.s.ended {
			sum.SessionsUnknown++
			continue
		}
		if res.s.ended {
			sum.EndedChecked++
			if res.status == http.StatusOK {
				sum.EndedAlive++
				sum.violate("a session ended during the run still validates (user %s)", res.s.user)
			}
			continue
		}
		sum.SessionsChecked++
		if res.status != http.StatusOK {
			sum.SessionsLost++
			if sum.SessionsLost <= 10 {
				sum.violate("lost session of %s: final validation answered %d %s", res.s.user, res.status, res.code)
			}
		}
	}
}

// checkLimiter: within a healthy stretch, no greedy client was admitted more
// than C + ⌊d/T⌋ over any interval d; over an interval that meets a fault
// window, where each instance falls back to its own bucket (and DynamoDB's
// bucket never learns of those admissions), not more than (instances + 1) × that.
func (r *run) checkLimiter(sum *Summary) {
	capacity := frontdoorRPM + frontdoorBurst
	period := time.Minute / frontdoorRPM
	for ip, st := range r.admitted {
		sort.Slice(st, func(i, j int) bool { return st[i].from.Before(st[j].from) })
		sum.LimiterChecked += len(st)
		for j := range st {
			for i := j; i >= 0; i-- {
				n := j - i + 1
				// Both decisions lie within [send of i, answer of j].
				d := st[j].to.Sub(st[i].from)
				bound := capacity + int(d/period)
				if r.inWindow(st[i].from, st[j].to, 0) {
					bound *= r.o.Instances + 1
				}
				if n > bound {
					sum.violate("limiter: client %s admitted %d front-door requests within %s (bound %d)", ip, n, d.Round(time.Millisecond), bound)
					return
				}
			}
		}
	}
}

// checkCounters: the minute counters never count more requests than were
// sent, and at least every request sent outside the fault windows (whose
// counter write could fail, up to the flush bound).
func (r *run) checkCounters(ctx context.Context, sum *Summary, from time.Time) {
	counters := metrics.NewCounters(r.db, r.names.Metrics, 4, clock.System{})
	c, err := counters.Sum(ctx, from, time.Now().Add(time.Minute))
	if err != nil {
		sum.violate("read the minute counters: %v", err)
		return
	}
	sum.Counted = c.Requests
	r.mu.Lock()
	defer r.mu.Unlock()
	var outside int64
	for _, s := range r.sends {
		// Its count reaches the counters by to + FlushBound.
		if !r.inWindow(s.from, s.to.Add(r.o.FlushBound), 0) {
			outside++
		}
	}
	// The last nudge's own counts may wait for a later request (or the flush interval).
	outside -= r.nudged
	sum.SentOutside = outside
	sum.Unanswered = r.unanswered.Load()
	sent := int64(len(r.sends)) + sum.Unanswered
	if sum.Counted > sent {
		sum.violate("counters: %d requests counted, only %d sent (a request counted twice)", sum.Counted, sent)
	}
	if sum.Counted < outside {
		sum.violate("counters: %d requests counted, fewer than the %d sent outside the fault windows (counts lost)", sum.Counted, outside)
	}
}

// checkMemory compares the server's first and last stretch (a minute, or a
// third of a shorter run): RSS and goroutines must not keep growing.
func (r *run) checkMemory(sum *Summary, samples []sample, start, end time.Time) {
	span := min(time.Minute, end.Sub(start)/3)
	// Only samples of healthy stretches: a fault changes how many requests
	// are in flight (a hang holds them, a refusal fails them at once).
	var first, last []sample
	for _, s := range samples {
		if r.inWindow(s.at, s.at, 0) {
			continue
		}
		if s.at.Before(start.Add(span)) && !s.at.Before(start) {
			first = append(first, s)
		}
		if !s.at.Before(end.Add(-span)) && !s.at.After(end) {
			last = append(last, s)
		}
	}
	if len(first) == 0 || len(last) == 0 {
		if r.o.Duration >= time.Minute {
			sum.violate("memory: too few samples (%d) of the server's RSS and goroutines outside the fault windows", len(samples))
		}
		return
	}
	// The highest RSS and live heap of each stretch, the mean goroutine count.
	avg := func(ss []sample) (int64, uint64, int) {
		var rss int64
		var heap uint64
		var g int
		for _, s := range ss {
			rss = max(rss, s.stats.RSSBytes)
			heap = max(heap, s.stats.HeapLiveBytes)
			g += s.stats.Goroutines
		}
		return rss, heap, g / len(ss)
	}
	sum.Stretch = span
	sum.RSSFirst, sum.HeapFirst, sum.GoroutinesFirst = avg(first)
	sum.RSSLast, sum.HeapLast, sum.GoroutinesLast = avg(last)
	// A line per tenth of the run, for the summary.
	step := max(end.Sub(start)/10, time.Second)
	for t := start; t.Before(end); t = t.Add(step) {
		var in []sample
		for _, s := range samples {
			if !s.at.Before(t) && s.at.Before(t.Add(step)) {
				in = append(in, s)
			}
		}
		if len(in) > 0 {
			rss, heap, g := avg(in)
			sum.Timeline = append(sum.Timeline, fmt.Sprintf("+%-4s RSS %6.1f MiB  live heap %6.1f MiB  goroutines %4d",
				t.Sub(start).Round(time.Second), float64(rss)/(1<<20), float64(heap)/(1<<20), g))
		}
	}
	// Flat: the last stretch within a quarter (plus a little for the caches
	// and pools that fill during the run) of the first. The per-instance
	// caches (limiter hints and fallback buckets, the dead-token set) grow
	// to their bounds during the first minute of a run that sends from a new
	// client address each time, so RSS is judged on runs of a minute or more.
	if r.o.Duration >= time.Minute {
		if sum.RSSLast > sum.RSSFirst*5/4+32<<20 {
			sum.violate("memory: RSS grew from %.1f MiB to %.1f MiB", float64(sum.RSSFirst)/(1<<20), float64(sum.RSSLast)/(1<<20))
		}
		if sum.HeapFirst > 0 && sum.HeapLast > sum.HeapFirst*3/2+32<<20 {
			sum.violate("memory: the live heap grew from %.1f MiB to %.1f MiB", float64(sum.HeapFirst)/(1<<20), float64(sum.HeapLast)/(1<<20))
		}
	}
	// Goroutines: each request in flight holds a few (the server's
	// connection, the gateway's call, the SDK's), so the bound allows four
	// per client on top of a quarter; a leak of one per request over a run
	// of thousands is far beyond it.
	if sum.GoroutinesLast > sum.GoroutinesFirst*5/4+4*r.o.Concurrency {
		sum.violate("goroutines grew from %d to %d", sum.GoroutinesFirst, sum.GoroutinesLast)
	}
}

// checkLogs looks for every secret of the run in every line the server
// wrote. A run holds tens of thousands of secrets and megabytes of logs, so
// instead of one scan per secret the lines are indexed once: every
// alphanumeric run of 16 or more characters (a token's random part, a
// password's, a cookie's value, even cut short) and every IP address.
func (r *run) checkLogs(sum *Summary) {
	lines := r.server.Logs().Lines()
	sum.LogLines = len(lines)
	r.mu.Lock()
	secrets := append([]secret(nil), r.secrets...)
	r.mu.Unlock()
	idx := indexLines(lines)
	seen := map[string]bool{}
	found := map[string]int{}
	for _, s := range secrets {
		if s.value == "" || seen[s.value] {
			continue
		}
		seen[s.value] = true
		sum.SecretsChecked++
		line, ok := idx.find(s.value)
		if !ok {
			continue
		}
		found[s.kind]++
		if found[s.kind] <= 3 {
			sum.violate("a %s appears in the logs: %.300s", s.kind, lines[line])
		}
	}
	for kind, n := range found {
		if n > 3 {
			sum.violate("%d distinct %ss appear in the logs in all", n, kind)
		}
	}
}

// minRun is the shortest alphanumeric run the log index keeps: shorter ones
// (words, numbers) match by chance.
const minRun = 16

// logIndex maps what the log lines hold to the line holding it.
type logIndex struct {
	runs map[string]int // every minRun-character window of every long alphanumeric run
	ips  map[string]int // every IP address, canonical form
}

var (
	alnumRun = regexp.MustCompile(`[A-Za-z0-9]{16,}`)
	ipLike   = regexp.MustCompile(`[0-9A-Fa-f.:]{7,}`)
)

func indexLines(lines []string) *logIndex {
	idx := &logIndex{runs: map[string]int{}, ips: map[string]int{}}
	for i, line := range lines {
		for _, run := range alnumRun.FindAllString(line, -1) {
			for j := 0; j+minRun <= len(run); j++ {
				if _, ok := idx.runs[run[j:j+minRun]]; !ok {
					idx.runs[run[j:j+minRun]] = i
				}
			}
		}
		for _, c := range ipLike.FindAllString(line, -1) {
			if a, err := netip.ParseAddr(strings.Trim(c, ".:")); err == nil {
				idx.ips[a.String()] = i
			}
		}
	}
	return idx
}

// find reports the line holding a secret: an IP address by its canonical
// form, anything else by any minRun-character piece of its alphanumeric core.
func (x *logIndex) find(secret string) (int, bool) {
	if a, err := netip.ParseAddr(secret); err == nil {
		i, ok := x.ips[a.String()]
		return i, ok
	}
	for _, core := range alnumRun.FindAllString(secret, -1) {
		for j := 0; j+minRun <= len(core); j++ {
			if i, ok := x.runs[core[j:j+minRun]]; ok {
				return i, true
			}
		}
	}
	return 0, false
}

// tokenSecret is the random part of a token, what must never be logged: its
// digits name the user (an accepted, documented property) and may appear.
func tokenSecret(tok string) string {
	if i := strings.LastIndexByte(tok, '_'); i >= 0 {
		return tok[i+1:]
	}
	return tok
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randomPassword is made at run time, so no password is written in source.
func randomPassword() string { return "Pw-" + randomHex(12) }
