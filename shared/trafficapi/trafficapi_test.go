package trafficapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

const T = 3 * time.Second // frontdoor emission interval of `small`

func TestFrontDoorAllow(t *testing.T) {
	env := dynamotest.New(t, "traffic-manager", small)
	fake := clock.NewFake(base)
	a := newApp(t, env, appOpts{clock: fake})
	res := a.do(http.MethodGet)
	if res.Status != 200 {
		t.Fatalf("status %d: %v", res.Status, res.Body)
	}
	m, _ := res.Body["metrics"].(map[string]any)
	if res.Body["success"] != true || res.Body["message"] != "Request processed successfully" || m == nil ||
		m["processingTime"] != "0ms" || m["systemLoad"] != "0.00" || m["requestId"] != res.Body["requestId"] {
		t.Errorf("body = %v", res.Body)
	}
	want := map[string]string{
		"X-Processing-Time":     "0",
		"X-System-Load":         "0.00",
		"X-RateLimit-Limit":     "20",
		"X-RateLimit-Remaining": "24",
		"X-RateLimit-Reset":     strconv.FormatInt(base.Add(T).UnixMilli(), 10),
		"RateLimit-Policy":      `"frontdoor";q=20;w=60`,
		"RateLimit":             `"frontdoor";r=24;t=3`,
		"Cache-Control":         "no-cache, no-store, must-revalidate",
	}
	for k, v := range want {
		if res.Headers[k] != v {
			t.Errorf("%s = %q, want %q", k, res.Headers[k], v)
		}
	}
	if _, ok := res.Headers["Retry-After"]; ok {
		t.Error("Retry-After on an allow")
	}
}

// After C the front door denies with the traffic envelope; a retry before
// X-RateLimit-Reset is denied, one at it admitted.
func TestFrontDoorDenyAndRetry(t *testing.T) {
	env := dynamotest.New(t, "traffic-manager", small)
	fake := clock.NewFake(base)
	a := newApp(t, env, appOpts{clock: fake})
	for i := 0; i < 25; i++ {
		if res := a.do(http.MethodGet); res.Status != 200 {
			t.Fatalf("request %d: %d", i, res.Status)
		}
	}
	fake.Advance(400 * time.Millisecond)
	res := a.do(http.MethodGet)
	if res.Status != 429 {
		t.Fatalf("C+1: status %d", res.Status)
	}
	b := res.Body
	if b["error"] != true || b["code"] != "RATE_LIMIT" || b["message"] != "Rate limit exceeded. Please slow down your requests." ||
		b["retryAfter"] != float64(3) || b["severity"] != "low" || b["advice"] == nil || b["timestamp"] == nil || b["requestId"] == nil {
		t.Errorf("deny body = %v", b)
	}
	reset, _ := strconv.ParseInt(res.Headers["X-RateLimit-Reset"], 10, 64)
	if res.Headers["Retry-After"] != "3" || res.Headers["X-RateLimit-Remaining"] != "0" ||
		reset != base.Add(T).UnixMilli() || res.Headers["RateLimit"] != `"frontdoor";r=0;t=3` {
		t.Errorf("deny headers = %v", res.Headers)
	}
	fake.Set(time.UnixMilli(reset - 1))
	if res := a.do(http.MethodGet); res.Status != 429 {
		t.Errorf("retry 1 ms before X-RateLimit-Reset: %d, want 429", res.Status)
	}
	fake.Set(time.UnixMilli(reset))
	if res := a.do(http.MethodGet); res.Status != 200 {
		t.Errorf("retry at X-RateLimit-Reset: %d, want 200", res.Status)
	}
}

func TestRateLimitStatus503(t *testing.T) {
	env := dynamotest.New(t, "traffic-manager", apitest.Merge(small, map[string]string{"RATE_LIMIT_STATUS": "503"}))
	a := newApp(t, env, appOpts{clock: clock.NewFake(base)})
	for i := 0; i < 25; i++ {
		a.do(http.MethodGet)
	}
	if res := a.do(http.MethodGet); res.Status != 503 || res.Body["code"] != "RATE_LIMIT" || res.Headers["Retry-After"] == "" {
		t.Errorf("deny = %d %v", res.Status, res.Body)
	}
}

// The front door spends one unit of frontdoor only; status=true spends nothing;
// other routes spend api.
func TestPolicies(t *testing.T) {
	env := dynamotest.New(t, "traffic-manager", small)
	calls := &store.CallCounter{}
	a := newApp(t, env, appOpts{clock: clock.NewFake(base), db: []func(*dynamodb.Options){calls.Option()}})
	for i := 0; i < 25; i++ {
		a.do(http.MethodGet)
	}
	if res := a.do(http.MethodGet); res.Status != 429 {
		t.Fatalf("frontdoor not exhausted: %d", res.Status)
	}
	calls.Reset()
	for _, v := range []string{"true", "TRUE", "True"} {
		res := a.do(http.MethodGet, query("status", v))
		if res.Status != 200 || res.Headers["X-RateLimit-Limit"] != "" {
			t.Errorf("status=%s: %d %v, want 200 without limiter headers", v, res.Status, res.Headers)
		}
	}
	if n := calls.CountTable(env.Tables.RateLimits); n != 0 {
		t.Errorf("status=true made %d limiter calls", n)
	}
	// status=false is the front door.
	if res := a.do(http.MethodGet, query("status", "false")); res.Status != 429 {
		t.Errorf("status=false: %d, want the front door's 429", res.Status)
	}
	// The api bucket is untouched by the front door: a POST passes the limiter
	// with a full api bucket (and then needs a session).
	res := a.do(http.MethodPost, body(`{}`))
	if res.Status != 401 || res.Headers["X-RateLimit-Limit"] != "6" || res.Headers["X-RateLimit-Remaining"] != "5" {
		t.Errorf("POST: %d %v, want 401 with a fresh api bucket (limit 6, remaining 5)", res.Status, res.Headers)
	}
	// Unknown sub-paths and methods spend api.
	if res := a.doPath(http.MethodGet, "/api/traffic-manager/nope"); res.Status != 404 || res.Headers["X-RateLimit-Remaining"] != "4" {
		t.Errorf("unknown path: %d %v", res.Status, res.Headers)
	}
	if res := a.do(http.MethodDelete); res.Status != 405 || res.Headers["X-RateLimit-Remaining"] != "3" {
		t.Errorf("DELETE: %d %v", res.Status, res.Headers)
	}
}

func TestStatusParameter(t *testing.T) {
	env := dynamotest.New(t, "traffic-manager", small)
	a := newApp(t, env, appOpts{clock: clock.NewFake(base)})
	for _, tc := range []struct {
		value string
		want  int
	}{
		{"true", 200}, {"TRUE", 200}, {"tRuE", 200}, {"false", 200}, {"False", 200},
		{"", 400}, {"1", 400}, {"yes", 400}, {" true", 400}, {"true\x00", 400}, {strings.Repeat("t", 5000), 400}, {"真", 400},
	} {
		t.Run(fmt.Sprintf("%.20q", tc.value), func(t *testing.T) {
			res := a.do(http.MethodGet, query("status", tc.value), from(fmt.Sprintf("198.51.100.%d", len(tc.value)%250)))
			if res.Status != tc.want {
				t.Fatalf("status %d, want %d: %v", res.Status, tc.want, res.Body)
			}
			if tc.want == 400 && (res.Body["code"] != "INVALID_PARAMETER" || res.Body["error"] != true || res.Body["message"] != "status must be 'true' or 'false'" || res.Body["timestamp"] == nil) {
				t.Errorf("400 body = %v", res.Body)
			}
		})
	}
}

func TestStatusAnswerCachedTwoSeconds(t *testing.T) {
	env := dynamotest.New(t, "traffic-manager", small)
	fake := clock.NewFake(base)
	var calls store.CallCounter
	a := newApp(t, env, appOpts{clock: fake, db: []func(*dynamodb.Options){calls.Option()}})
	counters := metrics.NewCounters(env.Client, env.Tables.Metrics, env.Config.MetricShards, fake)
	if err := counters.Add(context.Background(), base, metrics.Counts{Requests: 600, Admitted: 600, DurationMs: 60000}); err != nil {
		t.Fatal(err)
	}
	calls.Reset()
	res := a.do(http.MethodGet, query("status", "true"))
	reads := calls.Count("Query")
	if reads == 0 {
		t.Fatal("no reads for the first status answer")
	}
	sl, _ := res.Body["systemLoad"].(map[string]any)
	rl, _ := res.Body["rateLimit"].(map[string]any)
	if res.Body["status"] != "operational" || sl == nil || rl == nil || res.Body["processingTime"] != "0ms" || res.Body["timestamp"] == nil {
		t.Fatalf("status body = %v", res.Body)
	}
	if rl["limit"] != float64(20) || rl["window"] != float64(60000) || rl["threshold"] != 0.8 {
		t.Errorf("rateLimit = %v", rl)
	}
	// 600 requests this minute (30 s in), none the minute before: 600/6000 = 0.1;
	// 60 s of busy time over a 60 s window: one connection on average.
	if sl["currentLoad"] != 0.1 || sl["requestsLastMinute"] != float64(600) || sl["admittedLastMinute"] != float64(600) ||
		sl["activeConnections"] != float64(1) || sl["isOverloaded"] != false {
		t.Errorf("systemLoad = %v", sl)
	}
	fake.Advance(1999 * time.Millisecond)
	a.do(http.MethodGet, query("status", "true"))
	if calls.Count("Query") != reads {
		t.Errorf("second status answer within 2 s made %d more reads", calls.Count("Query")-reads)
	}
	fake.Advance(time.Millisecond)
	a.do(http.MethodGet, query("status", "true"))
	if calls.Count("Query") == reads {
		t.Error("the cache outlived 2 s")
	}
}

// Separate instances (own platform, own SDK client) fire together well over C
// for one client: exactly C admitted in every run; a second client is
// unaffected; one more after T and not before.
func TestExactAcrossInstances(t *testing.T) {
	env := dynamotest.New(t, "traffic-manager", small)
	fake := clock.NewFake(base)
	apps := make([]*app, 4)
	for i := range apps {
		apps[i] = newApp(t, env, appOpts{clock: fake})
	}
	fire := func(ip string, perInstance int) (ok, denied int) {
		var okN, deniedN atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, a := range apps {
			for j := 0; j < perInstance; j++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					res, err := a.Handle(context.Background(), event(http.MethodGet, "/api/traffic-manager", from(ip)))
					switch {
					case err != nil:
						t.Error(err)
					case res.StatusCode == 200:
						okN.Add(1)
					case res.StatusCode == 429:
						deniedN.Add(1)
					default:
						t.Errorf("status %d: %s", res.StatusCode, res.Body)
					}
				}()
			}
		}
		close(start)
		wg.Wait()
		return int(okN.Load()), int(deniedN.Load())
	}
	for run := 0; run < 3; run++ {
		ip := fmt.Sprintf("198.51.100.%d", 10+run)
		if ok, denied := fire(ip, 30); ok != 25 || denied != 95 {
			t.Fatalf("run %d: %d admitted, %d denied of 120; want exactly C = 25 admitted", run, ok, denied)
		}
	}
	if ok, _ := fire("192.0.2.77", 10); ok != 25 {
		t.Errorf("second client: %d admitted, want 25", ok)
	}
	fake.Advance(T - time.Microsecond)
	if ok, _ := fire("198.51.100.10", 3); ok != 0 {
		t.Errorf("%d admitted before T", ok)
	}
	fake.Advance(time.Microsecond)
	if ok, _ := fire("198.51.100.10", 3); ok != 1 {
		t.Errorf("%d admitted at T, want 1", ok)
	}
}

func TestRepeatedDenialsMakeNoCalls(t *testing.T) {
	env := dynamotest.New(t, "traffic-manager", small)
	calls := &store.CallCounter{}
	a := newApp(t, env, appOpts{clock: clock.NewFake(base), db: []func(*dynamodb.Options){calls.Option()}})
	for i := 0; i < 26; i++ {
		a.do(http.MethodGet)
	}
	calls.Reset()
	for i := 0; i < 30; i++ {
		if res := a.do(http.MethodGet); res.Status != 429 {
			t.Fatalf("status %d", res.Status)
		}
	}
	// The limiter makes none; the only calls are the metrics recorder's one
	// counter ADD per finished request (every answer is counted, 429s too).
	if n := calls.CountTable(env.Tables.RateLimits); n != 0 {
		t.Errorf("%d rate-limit calls for 30 repeated denials", n)
	}
	if n, rec := calls.Total(), calls.CountTable(env.Tables.Metrics); n != rec || rec > 30 {
		t.Errorf("calls = %v, want only the recorder's counter writes", calls.AccessSnapshot())
	}
}

// exhaust spends a bucket's 25 frontdoor units with opts and reports whether the next is denied.
func exhaust(a *app, opts ...reqOpt) bool {
	for i := 0; i < 25; i++ {
		if res := a.do(http.MethodGet, opts...); res.Status != 200 {
			a.t.Fatalf("request %d: %d", i, res.Status)
		}
	}
	return a.do(http.MethodGet, opts...).Status == 429
}

func TestClientIdentity(t *testing.T) {
	t.Run("forged X-Forwarded-For from an untrusted peer buys nothing", func(t *testing.T) {
		env := dynamotest.New(t, "traffic-manager", small)
		a := newApp(t, env, appOpts{clock: clock.NewFake(base)})
		for i := 0; i < 25; i++ {
			if res := a.do(http.MethodGet, from("203.0.113.20"), header("X-Forwarded-For", fmt.Sprintf("10.0.%d.1", i))); res.Status != 200 {
				t.Fatalf("request %d: %d", i, res.Status)
			}
		}
		if res := a.do(http.MethodGet, from("203.0.113.20"), header("X-Forwarded-For", "192.0.2.99")); res.Status != 429 {
			t.Errorf("a new forged X-Forwarded-For got quota: %d", res.Status)
		}
	})
	t.Run("behind a trusted proxy the right-most untrusted entry is the client", func(t *testing.T) {
		env := dynamotest.New(t, "traffic-manager", apitest.Merge(small, map[string]string{"TRUSTED_PROXY_CIDRS": "10.0.0.0/8"}))
		a := newApp(t, env, appOpts{clock: clock.NewFake(base)})
		if !exhaust(a, from("10.0.0.1"), header("X-Forwarded-For", "6.6.6.6, 198.51.100.1")) {
			t.Fatal("not exhausted")
		}
		// The client forges a different left part: same bucket.
		if res := a.do(http.MethodGet, from("10.0.0.2"), header("X-Forwarded-For", "7.7.7.7, 198.51.100.1, 10.3.3.3")); res.Status != 429 {
			t.Errorf("forged left entries bought quota: %d", res.Status)
		}
		// Another real client behind the proxy has its own bucket.
		if res := a.do(http.MethodGet, from("10.0.0.1"), header("X-Forwarded-For", "198.51.100.2")); res.Status != 200 {
			t.Errorf("another client behind the proxy: %d", res.Status)
		}
	})
	t.Run("IPv6 addresses of one /64 share a bucket", func(t *testing.T) {
		env := dynamotest.New(t, "traffic-manager", small)
		a := newApp(t, env, appOpts{clock: clock.NewFake(base)})
		for i := 0; i < 25; i++ {
			if res := a.do(http.MethodGet, from(fmt.Sprintf("2001:db8:aa:bb::%x", i+1))); res.Status != 200 {
				t.Fatalf("request %d: %d", i, res.Status)
			}
		}
		if res := a.do(http.MethodGet, from("2001:db8:aa:bb:ffff:ffff:ffff:ffff")); res.Status != 429 {
			t.Errorf("same /64: %d, want 429", res.Status)
		}
		if res := a.do(http.MethodGet, from("2001:db8:aa:bc::1")); res.Status != 200 {
			t.Errorf("next /64: %d, want 200", res.Status)
		}
	})
	t.Run("a logged-in user keeps one bucket across IPs", func(t *testing.T) {
		env := dynamotest.New(t, "traffic-manager", small)
		fake := clock.NewFake(base)
		id := seedIdentity(t, env, fake)
		a := newApp(t, env, appOpts{clock: fake})
		for i := 0; i < 25; i++ {
			if res := a.do(http.MethodGet, bearer(id.staff), from(fmt.Sprintf("192.0.2.%d", i+1))); res.Status != 200 {
				t.Fatalf("request %d: %d", i, res.Status)
			}
		}
		if res := a.do(http.MethodGet, bearer(id.staff), from("198.51.100.200")); res.Status != 429 {
			t.Errorf("user from a new IP: %d, want 429", res.Status)
		}
		// The IPs it used keep their own anonymous quota.
		if res := a.do(http.MethodGet, from("192.0.2.1")); res.Status != 200 {
			t.Errorf("anonymous request from a used IP: %d, want 200", res.Status)
		}
	})
}

// Shedding from measured traffic alone: the requests themselves, counted by
// the platform's metrics recorder into the shared minute counters, load a
// system whose TRAFFIC_CAPACITY_RPM is 10; the random source decides.
func TestSheddingFromMeasuredTraffic(t *testing.T) {
	env := dynamotest.New(t, "traffic-manager", apitest.Merge(small, map[string]string{"TRAFFIC_CAPACITY_RPM": "10"}))
	fake := clock.NewFake(base) // 12:00:30
	rnd := &clock.Sequence{Values: []float64{0.5, 0.0999, 0.1, 0.99}}
	a := newApp(t, env, appOpts{clock: fake, random: rnd})
	for i := 0; i < 9; i++ { // measured idle at the first one, then served from the 2 s cache
		if res := a.do(http.MethodGet); res.Status != 200 || res.Headers["X-System-Load"] != "0.00" {
			t.Fatalf("idle system, request %d: %d %v", i, res.Status, res.Headers["X-System-Load"])
		}
	}
	fake.Advance(2 * time.Second) // past the load cache: 9 requests in the last minute = 0.9
	want := []int{503, 200, 503, 503}
	for i, w := range want {
		res := a.do(http.MethodGet)
		if res.Status != w {
			t.Fatalf("request %d (random %v): %d, want %d", i, rnd.Values[i], res.Status, w)
		}
		if w == 503 {
			b := res.Body
			if b["code"] != "SYS_OVERLOAD" || b["error"] != true || b["retryAfter"] != float64(30) || b["severity"] != "medium" ||
				b["message"] == nil || b["advice"] == nil || b["timestamp"] == nil || b["requestId"] == nil ||
				res.Headers["Retry-After"] != "30" || res.Headers["X-RateLimit-Limit"] != "20" {
				t.Errorf("overload answer = %v %v", b, res.Headers)
			}
		} else if res.Headers["X-System-Load"] != "0.90" {
			t.Errorf("X-System-Load = %q, want 0.90", res.Headers["X-System-Load"])
		}
	}
	st := a.do(http.MethodGet, query("status", "true"))
	if sl := st.Body["systemLoad"].(map[string]any); st.Body["status"] != "degraded" || sl["isOverloaded"] != true || sl["requestsLastMinute"] != float64(9) {
		t.Errorf("status while shedding = %v", st.Body)
	}
	// 13 front-door requests were admitted in 12:00 (shed ones too: they
	// spent quota); the status=true probe is answered but spends nothing, so
	// it is not load. At 12:01:30 half of that minute is still inside the
	// sliding window: 6.5 requests, load 0.65, nothing shed.
	fake.Set(base.Add(time.Minute))
	for i := 0; i < 5; i++ {
		if res := a.do(http.MethodGet); res.Status != 200 || res.Headers["X-System-Load"] != "0.65" {
			t.Fatalf("after the window slid: %d %v", res.Status, res.Headers["X-System-Load"])
		}
	}
}

func TestOverridePermission(t *testing.T) {
	env := dynamotest.New(t, "traffic-manager", small)
	fake := clock.NewFake(base)
	id := seedIdentity(t, env, fake)
	a := newApp(t, env, appOpts{clock: fake})
	for _, tc := range []struct {
		name string
		opts []reqOpt
		want int
		code string
	}{
		{"anonymous", nil, 401, "UNAUTHORIZED"},
		{"unknown token", []reqOpt{bearer("nope")}, 401, "UNAUTHORIZED"},
		{"without trafficControl", []reqOpt{bearer(id.staff)}, 403, "FORBIDDEN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := a.do(http.MethodPost, append(tc.opts, body(`{"simulateLoad":true,"load":1}`), from("198.51.100."+strconv.Itoa(len(tc.name))))...)
			if res.Status != tc.want || res.Body["code"] != tc.code || res.Body["success"] != false {
				t.Errorf("%d %v, want %d %s", res.Status, res.Body, tc.want, tc.code)
			}
		})
	}
	out, err := env.Client.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(env.Tables.LoadOverrides)})
	if err != nil || len(out.Items) != 0 {
		t.Errorf("refused posts stored overrides: %v %v", out, err)
	}
}

func TestOverrides(t *testing.T) {
	post := func(a *app, b string) apitest.Response {
		return a.do(http.MethodPost, bearer(a.admin), body(b))
	}
	t.Run("reported, but shed only when enabled", func(t *testing.T) {
		for _, enabled := range []bool{false, true} {
			env := dynamotest.New(t, "traffic-manager", apitest.Merge(small, map[string]string{"LOAD_SIMULATION_ENABLED": strconv.FormatBool(enabled)}))
			fake := clock.NewFake(base)
			a := newApp(t, env, appOpts{clock: fake, random: &clock.Sequence{Values: []float64{0.5}}})
			a.admin = seedIdentity(t, env, fake).admin
			res := post(a, `{"simulateLoad":true,"load":0.9,"connections":0}`)
			if res.Status != 200 || res.Body["success"] != true || res.Body["message"] != "Traffic simulation updated successfully" {
				t.Fatalf("post: %d %v", res.Status, res.Body)
			}
			applied := res.Body["applied"].(map[string]any)
			cm := res.Body["currentMetrics"].(map[string]any)
			if applied["simulateLoad"] != true || applied["connectionsAdded"] != float64(0) || applied["loadAdded"] != 0.9 ||
				cm["currentLoad"] != 0.9 || cm["activeConnections"] != float64(0) || cm["lastUpdated"] != float64(base.UnixMilli()) {
				t.Errorf("post body = %v", res.Body)
			}
			get := a.do(http.MethodGet)
			if enabled && get.Status != 503 {
				t.Errorf("enabled: %d, want 503 SYS_OVERLOAD", get.Status)
			}
			if !enabled && (get.Status != 200 || get.Headers["X-System-Load"] != "0.90") {
				t.Errorf("disabled: %d %v, want 200 reporting 0.90", get.Status, get.Headers["X-System-Load"])
			}
			sl := a.do(http.MethodGet, query("status", "true")).Body["systemLoad"].(map[string]any)
			if sl["currentLoad"] != 0.9 || sl["overrideLoad"] != 0.9 || sl["measuredLoad"] != float64(0) || sl["isOverloaded"] != enabled || sl["simulateLoad"] != true {
				t.Errorf("enabled=%v: systemLoad = %v", enabled, sl)
			}
		}
	})
	t.Run("additive, clamped, expiring", func(t *testing.T) {
		// A huge capacity keeps the test's own (recorded) requests out of the figures.
		env := dynamotest.New(t, "traffic-manager", apitest.Merge(small, map[string]string{"LOAD_OVERRIDE_TTL": "300", "RATE_LIMIT_API_RPM": "100", "TRAFFIC_CAPACITY_RPM": "1000000000"}))
		fake := clock.NewFake(base)
		a := newApp(t, env, appOpts{clock: fake})
		a.admin = seedIdentity(t, env, fake).admin
		post(a, `{"simulateLoad":true,"load":0.25,"connections":10}`)
		res := post(a, `{"simulateLoad":true,"load":0.5,"connections":5}`)
		if cm := res.Body["currentMetrics"].(map[string]any); cm["currentLoad"] != 0.75 || cm["activeConnections"] != float64(15) {
			t.Errorf("two overrides = %v, want 0.75 and 15", cm)
		}
		for i := 0; i < 6; i++ {
			res = post(a, `{"simulateLoad":true,"load":0.7,"connections":10000}`)
		}
		if cm := res.Body["currentMetrics"].(map[string]any); cm["currentLoad"] != float64(1) || cm["activeConnections"] != float64(50000) {
			t.Errorf("clamped = %v, want 1 and 50000", cm)
		}
		fake.Advance(297 * time.Second)
		res = post(a, `{"simulateLoad":false}`)
		if cm := res.Body["currentMetrics"].(map[string]any); cm["currentLoad"] != float64(1) {
			t.Errorf("before the TTL = %v", cm)
		}
		fake.Advance(3 * time.Second) // exactly the TTL, and past this instance's 2 s load cache
		res = post(a, `{"simulateLoad":false}`)
		applied := res.Body["applied"].(map[string]any)
		if cm := res.Body["currentMetrics"].(map[string]any); cm["currentLoad"] != float64(0) || cm["activeConnections"] != float64(0) {
			t.Errorf("after the TTL = %v, want nothing left", cm)
		}
		if applied["simulateLoad"] != false || applied["connectionsAdded"] != float64(0) || applied["loadAdded"] != float64(0) {
			t.Errorf("simulateLoad false applied = %v", applied)
		}
	})
	t.Run("explicit 0 honoured, absent fields default", func(t *testing.T) {
		env := dynamotest.New(t, "traffic-manager", small)
		fake := clock.NewFake(base)
		a := newApp(t, env, appOpts{clock: fake})
		a.admin = seedIdentity(t, env, fake).admin
		res := post(a, `{"simulateLoad":true,"load":0,"connections":0}`)
		if ap := res.Body["applied"].(map[string]any); ap["connectionsAdded"] != float64(0) || ap["loadAdded"] != float64(0) {
			t.Errorf("explicit zeros = %v", ap)
		}
		res = post(a, `{"simulateLoad":true}`)
		if ap := res.Body["applied"].(map[string]any); ap["connectionsAdded"] != float64(100) || ap["loadAdded"] != 0.1 {
			t.Errorf("defaults = %v", ap)
		}
	})
}

func TestOverrideValidation(t *testing.T) {
	env := dynamotest.New(t, "traffic-manager", apitest.Merge(small, map[string]string{"RATE_LIMIT_API_RPM": "1000"}))
	fake := clock.NewFake(base)
	admin := seedIdentity(t, env, fake).admin
	a := newApp(t, env, appOpts{clock: fake})
	for _, tc := range []struct {
		body, code string
		details    []string
	}{
		{``, "EMPTY_BODY", nil},
		{`{`, "JSON_PARSE_ERROR", nil},
		{`[]`, "INVALID_BODY_TYPE", nil},
		{`{"simulateLoad":true,"extra":1}`, "VALIDATION_ERROR", []string{"unknown field \"extra\""}},
		{`{"simulateLoad":"yes"}`, "VALIDATION_ERROR", []string{"simulateLoad must be a boolean"}},
		{`{"simulateLoad":null}`, "VALIDATION_ERROR", []string{"simulateLoad must be a boolean"}},
		{`{"connections":1.5}`, "VALIDATION_ERROR", []string{"connections must be an integer between 0 and 10000"}},
		{`{"connections":10001}`, "VALIDATION_ERROR", []string{"connections must be an integer between 0 and 10000"}},
		{`{"connections":-1}`, "VALIDATION_ERROR", []string{"connections must be an integer between 0 and 10000"}},
		{`{"connections":"5"}`, "VALIDATION_ERROR", []string{"connections must be an integer between 0 and 10000"}},
		{`{"connections":1e400}`, "VALIDATION_ERROR", []string{"connections must be an integer between 0 and 10000"}},
		{`{"load":1.01}`, "VALIDATION_ERROR", []string{"load must be a number between 0 and 1"}},
		{`{"load":"0.5"}`, "VALIDATION_ERROR", []string{"load must be a number between 0 and 1"}},
		{`{"load":-0.1,"connections":true,"simulateLoad":1}`, "VALIDATION_ERROR", []string{
			"simulateLoad must be a boolean", "connections must be an integer between 0 and 10000", "load must be a number between 0 and 1"}},
	} {
		t.Run(tc.body, func(t *testing.T) {
			res := a.do(http.MethodPost, bearer(admin), body(tc.body))
			if res.Status != 400 || res.Body["code"] != tc.code || res.Body["success"] != false {
				t.Fatalf("%d %v, want 400 %s", res.Status, res.Body, tc.code)
			}
			if tc.details != nil && fmt.Sprint(res.Body["details"]) != fmt.Sprint(tc.details) {
				t.Errorf("details = %v, want %v", res.Body["details"], tc.details)
			}
		})
	}
	// Valid edge values.
	for _, b := range []string{`{"connections":10000,"load":1,"simulateLoad":true}`, `{"connections":5.0,"load":0}`, `{}`} {
		if res := a.do(http.MethodPost, bearer(admin), body(b)); res.Status != 200 {
			t.Errorf("%s: %d %v", b, res.Status, res.Body)
		}
	}
}

// With DynamoDB unreachable: fail open admits up to the in-memory bucket and
// the front door answers without a load figure; fail closed answers 503.
func TestStoreUnreachable(t *testing.T) {
	noRetry := func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }
	t.Run("open", func(t *testing.T) {
		env := dynamotest.New(t, "traffic-manager", small)
		env.Config.DynamoDBEndpoint = apitest.ClosedURL(t)
		env.Config.DBTimeout = 300 * time.Millisecond
		a := newApp(t, env, appOpts{clock: clock.NewFake(base), db: []func(*dynamodb.Options){noRetry}})
		ok := 0
		for i := 0; i < 30; i++ {
			res := a.do(http.MethodGet)
			switch res.Status {
			case 200:
				ok++
				if res.Headers["X-System-Load"] != "unknown" {
					t.Errorf("X-System-Load = %q with the store down", res.Headers["X-System-Load"])
				}
			case 429:
			default:
				t.Fatalf("status %d %v", res.Status, res.Body)
			}
		}
		if ok != 25 {
			t.Errorf("fail open admitted %d, want the in-memory bucket's 25", ok)
		}
		st := a.do(http.MethodGet, query("status", "true"))
		if st.Status != 200 || st.Body["status"] != "degraded" {
			t.Errorf("status with the store down = %d %v", st.Status, st.Body)
		}
	})
	t.Run("closed", func(t *testing.T) {
		env := dynamotest.New(t, "traffic-manager", apitest.Merge(small, map[string]string{"RATE_LIMIT_FAIL_MODE": "closed"}))
		env.Config.DynamoDBEndpoint = apitest.ClosedURL(t)
		env.Config.DBTimeout = 300 * time.Millisecond
		a := newApp(t, env, appOpts{clock: clock.NewFake(base), db: []func(*dynamodb.Options){noRetry}})
		res := a.do(http.MethodGet)
		if res.Status != 503 || res.Body["code"] != "SERVICE_UNAVAILABLE" || res.Headers["Retry-After"] == "" || res.Body["error"] != true {
			t.Errorf("fail closed = %d %v %v", res.Status, res.Body, res.Headers)
		}
	})
}
