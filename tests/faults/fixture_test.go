package faults

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/logging"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/tests/internal/stack"
)

// dbTimeout is DB_TIMEOUT for every instance here: small, so a fault costs
// little, yet far above DynamoDB Local's latency on a busy 2-core machine, so
// a healthy call seldom exceeds it.
const dbTimeout = 500 * time.Millisecond

// answerBound is the longest any answer may take while the store misbehaves.
const answerBound = dbTimeout + time.Second

// Frontdoor policy of these instances: C = 12, T = 6 s, so the fail-open
// bucket's bound is reachable in a few requests.
const (
	frontdoorRPM   = 10
	frontdoorBurst = 2
)

const (
	adminUser = "fault_admin"
	staffUser = "fault_staff"
	// Per mode: victimUser's sessions are ended one by one (DELETE
	// /api/sessions/{id}), enderUser ends all of theirs (DELETE
	// /api/sessions), so one mode's requests never end the other's.
	victimUser = "fault_victim_"
	enderUser  = "fault_ender_"
)

// modes are the RATE_LIMIT_FAIL_MODEs; each has its own stack of instances.
var modes = []string{"open", "closed"}

// soak reports whether the long variants run (make soak).
func soak() bool { return os.Getenv("ZENITH_SOAK") != "" }

// fixture is one set of tables behind one proxy, and one stack of function
// instances per RATE_LIMIT_FAIL_MODE, all through that proxy.
type fixture struct {
	proxy    *dbproxy.Proxy
	env      *dynamotest.Env
	stacks   map[string]*stack.Stack // by mode
	logs     map[string]*apitest.LogBuffer
	password map[string]string
	admin    string // a master_admin token
	staff    string // a staff_tester token (systemMonitoring, no userManagement)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{stacks: map[string]*stack.Stack{}, logs: map[string]*apitest.LogBuffer{}, password: map[string]string{}}
	users := []string{adminUser, staffUser}
	for _, mode := range modes {
		users = append(users, victimUser+mode, enderUser+mode)
	}
	for _, u := range users {
		f.password[u] = apitest.RandomPassword(t)
	}
	f.env = dynamotest.New(t, "auth", map[string]string{
		"MASTER_USERNAME": adminUser, "MASTER_PASSWORD": f.password[adminUser],
		"DB_TIMEOUT":     strconv.Itoa(int(dbTimeout / time.Millisecond)),
		"RATE_LIMIT_RPM": strconv.Itoa(frontdoorRPM), "RATE_LIMIT_BURST": strconv.Itoa(frontdoorBurst),
	})
	p, err := dbproxy.New(f.env.Config.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	f.proxy = p
	for _, mode := range modes {
		f.logs[mode] = &apitest.LogBuffer{}
		f.stacks[mode] = f.newStack(t, mode)
	}
	s := f.stacks["open"]
	f.admin = s.Login(t, adminUser, f.password[adminUser])
	for _, u := range users[1:] {
		s.CreateUser(t, f.admin, u, f.password[u], "staff_tester")
	}
	f.staff = s.Login(t, staffUser, f.password[staffUser])
	return f
}

// newStack starts one instance of each function through the proxy.
func (f *fixture) newStack(t *testing.T, mode string) *stack.Stack {
	t.Helper()
	cfg := f.env.Config
	cfg.DynamoDBEndpoint = f.proxy.URL()
	cfg.RateLimitFailMode = mode
	// A cold or busy DynamoDB Local can take longer than DB_TIMEOUT for the
	// first calls (auth's start reads the roles and the master user), so the
	// start is tried again, as Lambda would start another instance.
	for attempt := 1; ; attempt++ {
		s, err := stack.New(context.Background(), cfg, instanceOptions(f.logs[mode])...)
		if err == nil {
			return s.CheapPasswords()
		}
		if attempt == 10 {
			t.Fatalf("%s stack: %v", mode, err)
		}
		time.Sleep(store.BreakerCooldown)
	}
}

// instanceOptions send the instances' logs to logs and quiet their EMF lines
// and the SDK's own warnings about connections the proxy cut.
func instanceOptions(logs io.Writer) []platform.Option {
	return []platform.Option{
		platform.WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
		platform.WithMetricsOutput(io.Discard),
		platform.WithDynamoDBOptions(func(o *dynamodb.Options) { o.Logger = logging.Nop{} }),
	}
}

// sourceIP is a fresh client address per request, so no route's limiter
// bucket is shared with another's.
func sourceIP() string {
	return fmt.Sprintf("198.18.%d.%d", rand.IntN(256), 1+rand.IntN(254))
}

// logMark is a position in each mode's log, to read what was logged since.
type logMark map[string]int

func (f *fixture) mark() logMark {
	m := logMark{}
	for mode, l := range f.logs {
		m[mode] = len(l.String())
	}
	return m
}

// since returns the lines mode's instances logged after m.
func (f *fixture) since(m logMark, mode string) []string {
	return strings.Split(f.logs[mode].String()[m[mode]:], "\n")
}

// requestLog returns the lines logged for one request id.
func (f *fixture) requestLog(mode, requestID string) []string {
	var out []string
	for _, line := range strings.Split(f.logs[mode].String(), "\n") {
		if requestID != "" && strings.Contains(line, requestID) {
			out = append(out, line)
		}
	}
	return out
}

// outcome is one answer to one route under one mode.
type outcome struct {
	route   route
	mode    string
	req     apitest.Request
	res     apitest.Response
	elapsed time.Duration
}

// prepareAll builds one request per (route, mode) while the store is healthy.
func prepareAll(t *testing.T, f *fixture, rs []route) []outcome {
	t.Helper()
	var reqs []outcome
	for _, mode := range modes {
		for _, r := range rs {
			reqs = append(reqs, outcome{route: r, mode: mode, req: r.prepare(t, f, mode)})
		}
	}
	return reqs
}

// send sends each prepared request to its mode's stack, at most workers at a
// time, and collects the answers.
func send(t *testing.T, f *fixture, reqs []outcome, workers int) []outcome {
	t.Helper()
	out := make([]outcome, len(reqs))
	var mu sync.Mutex
	var errs []string
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(reqs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				o, err := f.sendOne(reqs[i])
				if err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
				}
				out[i] = o
			}
		}()
	}
	for i := range reqs {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	return out
}

func (f *fixture) sendOne(o outcome) (outcome, error) {
	h := f.stacks[o.mode].Handlers[stack.FunctionOf(o.req.Path)]
	headers := map[string]string{"content-type": "application/json", "user-agent": "fault-test"}
	for k, v := range o.req.Headers {
		headers[k] = v
	}
	o.req.Headers = headers
	start := time.Now()
	raw, err := h(context.Background(), o.req.Event())
	o.elapsed = time.Since(start)
	if err != nil {
		return o, fmt.Errorf("%s [%s]: Handle returned an error: %v", o.route.name, o.mode, err)
	}
	o.res = apitest.Response{Status: raw.StatusCode, Headers: raw.Headers, Cookies: raw.Cookies, Raw: raw.Body}
	if err := decodeJSON(raw.Body, &o.res.Body); err != nil {
		return o, fmt.Errorf("%s [%s]: body is not a JSON object: %q", o.route.name, o.mode, raw.Body)
	}
	return o, nil
}

// recoveryBound is how long after a fault clears every route must answer as
// when healthy again. The breaker's cooldown is 1 s; the rest is slack for a
// busy DynamoDB Local, whose calls can exceed the small DB_TIMEOUT on a loaded
// machine (each such call opens the breaker again).
const recoveryBound = 30 * time.Second

// recoverAll sends each request (a few at a time) until it answers as when
// healthy: a 503 is sent again, freshly prepared, after the breaker's
// cooldown, until recoveryBound has passed since from. It returns the last
// answers and how long after from the last route recovered.
func recoverAll(t *testing.T, f *fixture, reqs []outcome, from time.Time) ([]outcome, time.Duration) {
	t.Helper()
	pending := reqs
	var done []outcome
	for {
		results := send(t, f, pending, 4)
		pending = pending[:0:0]
		for _, o := range results {
			if o.res.Status == 503 && time.Since(from) < recoveryBound {
				// A 503 may still have changed something (a user created
				// before a later call failed fast): send a fresh request.
				o.req = o.route.prepare(t, f, o.mode)
				pending = append(pending, o)
				continue
			}
			done = append(done, o)
		}
		if len(pending) == 0 {
			return done, time.Since(from)
		}
		time.Sleep(store.BreakerCooldown)
	}
}

// scheduledPayload is EventBridge's scheduled event, as the alert evaluator receives it.
var scheduledPayload = []byte(`{"version":"0","id":"fault-test","detail-type":"Scheduled Event","source":"aws.events","account":"000000000000","time":"2100-01-01T00:00:00Z","region":"local","resources":[],"detail":{}}`)

type evaluation struct {
	err     error
	elapsed time.Duration
}

// scheduled runs the alert evaluation on each mode's system-monitor at once.
func scheduled(f *fixture) map[string]evaluation {
	out := map[string]evaluation{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, mode := range modes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := f.stacks[mode].Monitor.Invoke(context.Background(), scheduledPayload)
			mu.Lock()
			out[mode] = evaluation{err, time.Since(start)}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// scheduledUntilOK runs the evaluation until it succeeds on both modes or recoveryBound passes.
func scheduledUntilOK(f *fixture, from time.Time) map[string]evaluation {
	for {
		out := scheduled(f)
		ok := true
		for _, e := range out {
			ok = ok && e.err == nil
		}
		if ok || time.Since(from) > recoveryBound {
			return out
		}
		time.Sleep(store.BreakerCooldown)
	}
}
