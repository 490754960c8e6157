// Package durability runs DynamoDB Local with a data directory (not
// -inMemory), kills it with SIGKILL in the middle of traffic from real
// function instances and restarts it on the same directory and port, then
// proves nothing acknowledged was lost and nothing happened twice:
//
//   - every login answered 200 before the kill still validates after it (on
//     the old instances and on a freshly started one);
//   - no session ended (logout, end-all) with a 200 before the kill
//     validates after it;
//   - the minute counters never count more requests than were sent, and count
//     every request answered before the kill (up to the flush bound);
//   - the scheduled evaluation of one window, run before the kill and after
//     each restart, raises its alert once;
//   - no answer is a 5xx other than 503 SERVICE_UNAVAILABLE.
//
// `make test` kills it once; ZENITH_SOAK=1 (`make soak`) three times with
// more traffic.
package durability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/logging"

	"github.com/zenithfresh/zenith-serverless/shared/alerts"
	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/localdb"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/monitorapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/samtemplate"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/tables"
	"github.com/zenithfresh/zenith-serverless/tests/internal/stack"
)

const (
	dbTimeout = time.Second
	// flushBound is how late a count may reach the counters (the metrics
	// flush interval, once there is one; today every request writes its own).
	flushBound = time.Second
	adminUser  = "dur_admin"
)

// shiftClock is the wall clock moved by an offset that a test can jump
// forward: time flows (the store breaker's cooldown passes), minutes can be
// skipped, and every ttl written lies near apitest.Epoch, decades away from
// DynamoDB Local's TTL sweep.
type shiftClock struct{ offset atomic.Int64 }

func (c *shiftClock) Now() time.Time       { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *shiftClock) Jump(d time.Duration) { c.offset.Add(int64(d)) }
func newShiftClock(at time.Time) *shiftClock {
	c := &shiftClock{}
	c.offset.Store(int64(time.Until(at)))
	return c
}
func (c *shiftClock) minute() time.Time { return c.Now().Truncate(time.Minute) }
func (c *shiftClock) String() string    { return c.Now().Format(time.RFC3339) }
func soak() bool                        { return os.Getenv("ZENITH_SOAK") != "" }
func quiet() *slog.Logger               { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func sourceIP() string                  { return fmt.Sprintf("198.18.%d.%d", rand.IntN(256), 1+rand.IntN(254)) }
func loginBody(t testing.TB, u, pw string) string {
	return apitest.JSON(t, map[string]any{"action": "login", "username": u, "password": pw})
}

// session is one login in the ledger.
type session struct {
	token   string
	user    string
	ended   bool // a logout or end-all of it answered success before the check
	unknown bool // a logout or end-all of it answered 503: either outcome is right
}

// ledger records what the traffic did, with the time of every answer.
type ledger struct {
	mu       sync.Mutex
	sessions []*session
	byUser   map[string][]*session
	answered []time.Time // every request's answer time (wall clock)
	statuses map[int]int
	bad      []string
}

func (l *ledger) record(res apitest.Response, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answered = append(l.answered, time.Now())
	l.statuses[res.Status]++
	if res.Status >= 500 && !(res.Status == http.StatusServiceUnavailable && res.Str("code") == "SERVICE_UNAVAILABLE") {
		l.bad = append(l.bad, fmt.Sprintf("%s: %d %s", what, res.Status, res.Raw))
	}
}

type fixture struct {
	t         *testing.T
	root, dir string
	srv       *localdb.Server
	cfg       config.Config
	clock     *shiftClock
	stack     *stack.Stack
	passwords map[string]string
	users     []string
	userLock  map[string]*sync.Mutex
	admin     string
	led       *ledger
	counters  *metrics.Counters
	firstMin  time.Time // the minute the setup started: the counters are summed from it
}

func (f *fixture) newStack() *stack.Stack {
	f.t.Helper()
	for attempt := 1; ; attempt++ {
		s, err := stack.New(context.Background(), f.cfg, platform.WithClock(f.clock), platform.WithLogger(quiet()),
			platform.WithMetricsOutput(io.Discard), platform.WithDynamoDBOptions(func(o *dynamodb.Options) { o.Logger = logging.Nop{} }))
		if err == nil {
			return s.CheapPasswords()
		}
		if attempt == 10 {
			f.t.Fatalf("start the functions: %v", err)
		}
		time.Sleep(store.BreakerCooldown)
	}
}

// do sends r through the stack and records the answer.
func (f *fixture) do(r apitest.Request, what string) apitest.Response {
	return f.doOn(f.stack, r, what)
}

// doOn sends r through st and records the answer: every request after the
// setup is in the ledger, so it can be matched with the counters.
func (f *fixture) doOn(st *stack.Stack, r apitest.Request, what string) apitest.Response {
	if r.SourceIP == "" {
		r.SourceIP = sourceIP()
	}
	res := st.Do(f.t, r)
	f.led.record(res, what)
	if res.Status == http.StatusServiceUnavailable {
		time.Sleep(200 * time.Millisecond) // a client backs off; no spinning through the outage
	}
	return res
}

// counts returns how many sessions the ledger holds live and ended (with a 200).
func (l *ledger) counts() (live, ended int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.sessions {
		switch {
		case s.ended:
			ended++
		case !s.unknown:
			live++
		}
	}
	return live, ended
}

// until waits until cond holds (checked every 100 ms) or limit passes.
func until(cond func() bool, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cond()
}

func newFixture(t *testing.T) *fixture {
	root, err := localdb.FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, root: root, dir: t.TempDir(), passwords: map[string]string{}, userLock: map[string]*sync.Mutex{},
		led: &ledger{byUser: map[string][]*session{}, statuses: map[int]int{}}}
	if f.srv, err = localdb.StartWith(t.Context(), root, localdb.Options{DBPath: f.dir}); err != nil {
		t.Fatalf("DynamoDB Local with a data directory: %v", err)
	}
	t.Cleanup(func() { f.srv.Stop() })

	names := config.DefaultTables.WithPrefix("d" + apitest.RandomHex(t, 4) + "-")
	env := names.Env()
	f.passwords[adminUser] = apitest.RandomPassword(t)
	for k, v := range map[string]string{
		"DYNAMODB_ENDPOINT": f.srv.Endpoint, "AWS_REGION": "us-east-1", "DB_TIMEOUT": strconv.Itoa(int(dbTimeout / time.Millisecond)),
		"MASTER_USERNAME": adminUser, "MASTER_PASSWORD": f.passwords[adminUser],
	} {
		env[k] = v
	}
	if f.cfg, err = config.Load("auth", func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	ac, err := store.LoadAWS(t.Context(), f.cfg.Region, f.cfg.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := samtemplate.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tables.Bootstrap(t.Context(), store.NewAdminDynamoDB(ac, f.cfg.DynamoDBEndpoint), tmpl.Tables, names); err != nil {
		t.Fatalf("create tables: %v", err)
	}

	// Ten seconds into minute M of 2100-01-01.
	f.clock = newShiftClock(apitest.Epoch.Add(10 * time.Second))
	f.firstMin = f.clock.minute()
	f.counters = metrics.NewCounters(store.NewAdminDynamoDB(ac, f.cfg.DynamoDBEndpoint), names.Metrics, f.cfg.MetricShards, f.clock)
	f.stack = f.newStack()
	f.admin = f.stack.Login(t, adminUser, f.passwords[adminUser])
	for i := range 4 {
		u := fmt.Sprintf("dur_user_%d", i)
		f.passwords[u] = apitest.RandomPassword(t)
		f.stack.CreateUser(t, f.admin, u, f.passwords[u], "staff_tester")
		f.users = append(f.users, u)
		f.userLock[u] = &sync.Mutex{}
	}
	return f
}

// traffic runs logins, validations, logouts, end-alls and front-door checks
// from workers until stop is closed.
func (f *fixture) traffic(stop <-chan struct{}, workers int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for {
				select {
				case <-stop:
					return
				default:
				}
				f.step(rng)
			}
		}()
	}
	return &wg
}

func (f *fixture) live(rng *rand.Rand) *session {
	f.led.mu.Lock()
	defer f.led.mu.Unlock()
	for range 8 {
		if len(f.led.sessions) == 0 {
			return nil
		}
		if s := f.led.sessions[rng.IntN(len(f.led.sessions))]; !s.ended && !s.unknown {
			return s
		}
	}
	return nil
}

func (f *fixture) step(rng *rand.Rand) {
	switch n := rng.IntN(100); {
	case n < 35:
		u := f.users[rng.IntN(len(f.users))]
		f.userLock[u].Lock() // an end-all of this user cannot race its login
		defer f.userLock[u].Unlock()
		res := f.do(apitest.Request{Method: "POST", Path: "/api/auth", Body: loginBody(f.t, u, f.passwords[u])}, "login")
		if tok, _ := res.Get("session.id").(string); res.Status == http.StatusOK && tok != "" {
			s := &session{token: tok, user: u}
			f.led.mu.Lock()
			f.led.sessions = append(f.led.sessions, s)
			f.led.byUser[u] = append(f.led.byUser[u], s)
			f.led.mu.Unlock()
		}
	case n < 45:
		s := f.live(rng)
		if s == nil {
			return
		}
		res := f.do(apitest.Request{Method: "POST", Path: "/api/auth", Headers: apitest.Bearer(s.token), Body: `{"action":"logout"}`}, "logout")
		f.led.mu.Lock()
		if res.Status == http.StatusOK && res.Body["success"] == true {
			s.ended = true
		} else if res.Status != http.StatusOK || res.Body["success"] != false {
			s.unknown = true
		}
		f.led.mu.Unlock()
	case n < 48:
		u := f.users[rng.IntN(len(f.users))]
		f.userLock[u].Lock()
		defer f.userLock[u].Unlock()
		f.led.mu.Lock()
		var tok string
		for _, s := range f.led.byUser[u] {
			if !s.ended && !s.unknown {
				tok = s.token
			}
		}
		f.led.mu.Unlock()
		if tok == "" {
			return
		}
		res := f.do(apitest.Request{Method: "DELETE", Path: "/api/sessions", Headers: apitest.Bearer(tok)}, "end all")
		f.led.mu.Lock()
		for _, s := range f.led.byUser[u] {
			if res.Status == http.StatusOK {
				s.ended = true
			} else if !s.ended {
				s.unknown = true
			}
		}
		f.led.mu.Unlock()
	case n < 80:
		if s := f.live(rng); s != nil {
			f.do(apitest.Request{Method: "GET", Path: "/api/auth", Headers: apitest.Bearer(s.token)}, "validate")
		}
	default:
		f.do(apitest.Request{Method: "GET", Path: "/api/traffic-manager"}, "front door")
	}
}

// evaluate runs the scheduled alert evaluation once (retrying a store error)
// and returns what it did for the failed-logins rule.
//
// It runs on its own system-monitor instance whose clock stands a few seconds
// into minute M+1, as the scheduler's run for window M would, however long
// the traffic and the restarts took.
func (f *fixture) evaluate(m time.Time) (window time.Time, action alerts.Action) {
	f.t.Helper()
	clk := clock.NewFake(m.Add(time.Minute + 5*time.Second))
	cfg := f.cfg
	cfg.Function = "system-monitor"
	d, err := platform.New(context.Background(), cfg, platform.WithClock(clk), platform.WithLogger(quiet()), platform.WithMetricsOutput(io.Discard),
		platform.WithDynamoDBOptions(func(o *dynamodb.Options) { o.Logger = logging.Nop{} }))
	if err != nil {
		f.t.Fatal(err)
	}
	mon, err := monitorapi.NewHandler(context.Background(), d)
	if err != nil {
		f.t.Fatal(err)
	}
	payload := []byte(`{"source":"aws.events","detail-type":"Scheduled Event","detail":{}}`)
	for attempt := 1; ; attempt++ {
		out, err := mon.Invoke(context.Background(), payload)
		if err == nil {
			res := out.(monitorapi.EvaluationResult)
			for _, r := range res.Results {
				if r.Rule == alerts.RuleFailedLogins {
					return time.UnixMilli(res.Window).UTC(), r.Action
				}
			}
			f.t.Fatalf("the evaluation has no %s result: %+v", alerts.RuleFailedLogins, res)
		}
		if attempt == 10 {
			f.t.Fatalf("scheduled evaluation: %v", err)
		}
		// Its breaker runs on the fake clock: move it past the cooldown (still in M+1).
		clk.Advance(store.BreakerCooldown + 100*time.Millisecond)
		time.Sleep(store.BreakerCooldown)
	}
}

// alertsOf lists the alerts of a rule through GET /api/system-monitor?endpoint=alerts.
func (f *fixture) alertsOf(s *stack.Stack, rule string) int {
	f.t.Helper()
	var res apitest.Response
	for attempt := 0; attempt < 10; attempt++ {
		if res = f.doOn(s, apitest.Request{Method: "GET", Path: "/api/system-monitor", Query: map[string]string{"endpoint": "alerts"},
			Headers: apitest.Bearer(f.admin)}, "alerts"); res.Status != http.StatusServiceUnavailable {
			break
		}
		time.Sleep(store.BreakerCooldown)
	}
	if res.Status != http.StatusOK {
		f.t.Fatalf("list alerts: %d %s", res.Status, res.Raw)
	}
	var body struct {
		Alerts []struct {
			Rule string `json:"rule"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal([]byte(res.Raw), &body); err != nil {
		f.t.Fatal(err)
	}
	n := 0
	for _, a := range body.Alerts {
		if a.Rule == rule {
			n++
		}
	}
	return n
}

// restart kills DynamoDB Local with SIGKILL and starts it again on the same
// directory and port.
func (f *fixture) restart() (killedAt time.Time, down time.Duration) {
	f.t.Helper()
	killedAt = time.Now()
	f.srv.Kill()
	srv, err := localdb.StartWith(f.t.Context(), f.root, localdb.Options{DBPath: f.dir, Port: f.srv.Port()})
	if err != nil {
		f.t.Fatalf("restart DynamoDB Local on %s: %v", f.dir, err)
	}
	f.srv = srv
	return killedAt, time.Since(killedAt)
}

// TestKillMidTraffic is the durability proof of issue 10.
func TestKillMidTraffic(t *testing.T) {
	f := newFixture(t)
	// Minute M starts now (the clock jumps forward to five seconds into the
	// next minute, however long the setup took).
	m := f.clock.minute().Add(time.Minute)
	f.clock.Jump(m.Add(5 * time.Second).Sub(f.clock.Now()))

	// Minute M: six failed logins, more than the failed-logins rule allows.
	for i := range 6 {
		f.do(apitest.Request{Method: "POST", Path: "/api/auth", Body: loginBody(t, fmt.Sprintf("nobody_%d", i), apitest.RandomPassword(t))}, "failed login")
	}
	if f.clock.minute() != m {
		t.Fatalf("six failed logins took the rest of minute M (%s): too slow a machine for this test", f.clock)
	}
	// Minute M+1: the evaluation of window M raises the alert.
	f.clock.Jump(m.Add(time.Minute).Sub(f.clock.Now()))
	window, action := f.evaluate(m)
	if !window.Equal(m) || action != alerts.ActionRaised {
		t.Fatalf("evaluation of window %s: %s %s, want raised for %s", window, alerts.RuleFailedLogins, action, m)
	}

	// Each cycle: traffic until the ledger holds a few more live and ended
	// sessions, the kill in the middle of it, traffic again until a login
	// after the restart succeeds.
	cycles, want := 1, 10
	if soak() {
		cycles, want = 3, 25
	}
	var kills []time.Time
	for c := range cycles {
		stop := make(chan struct{})
		wg := f.traffic(stop, 4)
		live0, ended0 := f.led.counts()
		if !until(func() bool { l, e := f.led.counts(); return l >= live0+want && e >= ended0+want/3 }, 40*time.Second) {
			t.Logf("cycle %d: the traffic made fewer sessions than planned before the kill", c+1)
		}
		killedAt, down := f.restart()
		kills = append(kills, killedAt)
		live1, _ := f.led.counts()
		until(func() bool { l, _ := f.led.counts(); return l >= live1+2 }, 30*time.Second)
		close(stop)
		wg.Wait()
		t.Logf("cycle %d: DynamoDB Local killed at %s, answering again %s later", c+1, killedAt.Format(time.StampMilli), down.Round(time.Millisecond))

		// The same window, evaluated again after the restart: not raised twice.
		if window, action := f.evaluate(m); !window.Equal(m) || action == alerts.ActionRaised {
			t.Errorf("after restart %d the evaluation of window %s did %s for %s again", c+1, window, action, alerts.RuleFailedLogins)
		}
	}
	time.Sleep(store.BreakerCooldown + flushBound)

	// A fresh instance reads only what the store kept.
	fresh := f.newStack()
	if n := f.alertsOf(fresh, alerts.RuleFailedLogins); n != 1 {
		t.Errorf("%d %s alerts for one window, want 1", n, alerts.RuleFailedLogins)
	}

	f.led.mu.Lock()
	sessions := append([]*session(nil), f.led.sessions...)
	f.led.mu.Unlock()
	var live, ended, unknown, lost, resurrected int
	for _, s := range sessions {
		if s.unknown && !s.ended {
			unknown++
			continue
		}
		for _, st := range []*stack.Stack{f.stack, fresh} {
			var res apitest.Response
			for attempt := 0; attempt < 5; attempt++ {
				res = f.doOn(st, apitest.Request{Method: "GET", Path: "/api/auth", Headers: apitest.Bearer(s.token)}, "final validation")
				if res.Status != http.StatusServiceUnavailable {
					break
				}
				time.Sleep(store.BreakerCooldown)
			}
			switch {
			case s.ended && res.Status == http.StatusOK:
				resurrected++
				t.Errorf("a session of %s ended (with a 200) before the check validates after the restart", s.user)
			case !s.ended && res.Status != http.StatusOK:
				lost++
				t.Errorf("a session of %s (login answered 200) does not validate after the restart: %d %s", s.user, res.Status, res.Raw)
			}
		}
		if s.ended {
			ended++
		} else {
			live++
		}
	}

	// Counted at most once, and every request answered before a kill counted.
	// A request to every function of the old instances first, so an instance
	// that flushes its counts when a request comes in does so.
	for _, path := range []string{"/api/auth", "/api/sessions", "/api/traffic-manager", "/api/system-monitor"} {
		f.do(apitest.Request{Method: "GET", Path: path}, "flush nudge")
	}
	time.Sleep(flushBound + 500*time.Millisecond)
	counts, err := f.counters.Sum(context.Background(), f.firstMin, f.clock.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}

	f.led.mu.Lock()
	// Every request either stack answered, the setup's included.
	sent := f.stack.Requests() + fresh.Requests()
	var beforeKill int64
	for _, at := range f.led.answered {
		if at.Before(kills[0].Add(-flushBound)) {
			beforeKill++
		}
	}
	statuses, bad := f.led.statuses, f.led.bad
	f.led.mu.Unlock()
	if counts.Requests > sent {
		t.Errorf("%d requests counted, only %d sent: a request was counted twice", counts.Requests, sent)
	}
	if counts.Requests < beforeKill {
		t.Errorf("%d requests counted, fewer than the %d answered before the first kill: acknowledged counts were lost", counts.Requests, beforeKill)
	}
	for _, b := range bad {
		t.Errorf("unexpected 5xx: %s", b)
	}
	if live == 0 || ended == 0 {
		t.Errorf("the traffic checked %d live and %d ended sessions: too little to prove anything", live, ended)
	}
	t.Logf("%d kill(s); sessions: %d live checked, %d lost; %d ended checked, %d valid again; %d with a 503'd end (not checked); "+
		"requests: %d sent, %d answered before the first kill, %d counted; answers %v",
		cycles, live, lost, ended, resurrected, unknown, sent, beforeKill, counts.Requests, statuses)
}
