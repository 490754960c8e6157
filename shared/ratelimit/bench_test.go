package ratelimit_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/ratelimit"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// The benchmarks run against DynamoDB Local (DYNAMODB_ENDPOINT, else one is
// started) on loopback. bench/ratelimit-compare runs the same scenarios for
// rate-limiter-flexible's RateLimiterDynamo on the same endpoint; see
// BENCHMARKS.md (Rate limiting). Use -benchtime=2000x for the figures there.

// benchPolicies: frontdoor never denies (the allowed path), api admits one
// request a day (the denied path), both with a window no benchmark outlives.
var benchPolicies = map[string]string{
	"RATE_LIMIT_RPM": "1000000", "RATE_LIMIT_BURST": "1000000", "RATE_LIMIT_WINDOW": "86400",
	"RATE_LIMIT_API_RPM": "1", "RATE_LIMIT_API_BURST": "0",
}

var callerCounts = []int{1, 8, 32}

// runCallers makes n decisions from callers goroutines and reports
// decisions/s, p50 and p99 latency.
func runCallers(b *testing.B, callers int, decide func(i int) bool) (admitted int64) {
	lat := make([][]time.Duration, callers)
	var next, adm atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if decide(i) {
					adm.Add(1)
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "decisions/s")
	b.ReportMetric(float64(all[len(all)*50/100].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[min(len(all)-1, len(all)*99/100)].Microseconds())/1000, "p99-ms")
	return adm.Load()
}

func decideFn(b *testing.B, l *lim, policy string, keys []client) func(int) bool {
	return func(i int) bool {
		res, err := l.Limit(context.Background(), policy, keys[i%len(keys)])
		if err != nil {
			b.Error(err)
			return false
		}
		return !res.Denied
	}
}

func clients(n int) []client {
	out := make([]client, n)
	for i := range out {
		out[i] = req(fmt.Sprintf("198.18.%d.%d", i/250, i%250+1))
	}
	return out
}

func BenchmarkDecision(b *testing.B) {
	env := dynamotest.New(b, "bench", benchPolicies)
	for _, callers := range callerCounts {
		// Allowed: 1000 clients, every decision admitted.
		b.Run(fmt.Sprintf("allowed/callers=%d", callers), func(b *testing.B) {
			var calls store.CallCounter
			l := build(b, env.NewClient(b, calls.Option()), env.Config, clock.System{}, quiet())
			keys := clients(1000)
			if adm := runCallers(b, callers, decideFn(b, l, ratelimit.PolicyFrontdoor, keys)); adm != int64(b.N) {
				b.Fatalf("%d of %d admitted", adm, b.N)
			}
			b.ReportMetric(float64(calls.Count("UpdateItem"))/float64(b.N), "calls/decision")
		})
		// Denied, warm instance: 1000 clients that spent their one request a day
		// and were already refused once by this instance.
		b.Run(fmt.Sprintf("denied/callers=%d", callers), func(b *testing.B) {
			var calls store.CallCounter
			l := build(b, env.NewClient(b, calls.Option()), env.Config, clock.System{}, quiet())
			keys := clients(1000)
			for _, k := range keys { // spend the quota from another instance...
				other := build(b, env.Client, env.Config, clock.System{}, quiet())
				other.Limit(context.Background(), ratelimit.PolicyAPI, k)
			}
			for _, k := range keys { // ...then this one learns each denial once (1 call each, see denied-cold)
				l.Limit(context.Background(), ratelimit.PolicyAPI, k)
			}
			calls.Reset()
			if adm := runCallers(b, callers, decideFn(b, l, ratelimit.PolicyAPI, keys)); adm != 0 {
				b.Fatalf("%d admitted", adm)
			}
			b.ReportMetric(float64(calls.Count("UpdateItem"))/float64(b.N), "calls/decision")
		})
		// Denied, cold instance (no deny cache): what the first denial of a client costs.
		b.Run(fmt.Sprintf("denied-cold/callers=%d", callers), func(b *testing.B) {
			var calls store.CallCounter
			client := env.NewClient(b, calls.Option())
			keys := clients(1000)
			calls.Reset()
			adm := runCallers(b, callers, func(i int) bool {
				l := build(b, client, env.Config, clock.System{}, quiet())
				res, err := l.Limit(context.Background(), ratelimit.PolicyAPI, keys[i%len(keys)])
				if err != nil {
					b.Error(err)
				}
				return err == nil && !res.Denied
			})
			if adm != 0 {
				b.Fatalf("%d admitted", adm)
			}
			b.ReportMetric(float64(calls.Count("UpdateItem"))/float64(b.N), "calls/decision")
		})
	}
}

// BenchmarkBurst measures over-admission: each op fires 200 requests for one
// fresh client (C = 20, no refill inside the run) through 4 instances, each
// with its own SDK client, from `callers` concurrent callers. "fresh" starts
// from no item; "stale" from an item whose TAT passed long ago (the idle
// branch racing, the analogue of a fixed window rolling over). The
// admitted-max metric must be 20 and over-admitted 0.
func BenchmarkBurst(b *testing.B) {
	env := dynamotest.New(b, "bench", map[string]string{
		"RATE_LIMIT_RPM": "20", "RATE_LIMIT_BURST": "0", "RATE_LIMIT_WINDOW": "86400",
	})
	const burst, capacity = 200, 20
	for _, kind := range []string{"fresh", "stale"} {
		for _, callers := range callerCounts {
			b.Run(fmt.Sprintf("%s/callers=%d", kind, callers), func(b *testing.B) {
				fake := clock.NewFake(base)
				ls := make([]*lim, 4)
				for i := range ls {
					l := build(b, env.NewClient(b, func(*dynamodb.Options) {}), env.Config, fake, quiet())
					ls[i] = l
				}
				var maxAdmitted, over int64
				for op := 0; op < b.N; op++ {
					r := req(fmt.Sprintf("198.19.%d.%d", op/250, op%250+1))
					r.userID = fmt.Sprintf("burst-%s-%d-%d-%d", kind, callers, op, time.Now().UnixNano())
					if kind == "stale" {
						for i := 0; i < capacity; i++ {
							ls[0].Limit(context.Background(), ratelimit.PolicyFrontdoor, r)
						}
						fake.Advance(48 * time.Hour) // the bucket is full again; its item is stale
					}
					var next, adm atomic.Int64
					var wg sync.WaitGroup
					for c := 0; c < callers; c++ {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for i := next.Add(1); i <= burst; i = next.Add(1) {
								res, err := ls[int(i)%len(ls)].Limit(context.Background(), ratelimit.PolicyFrontdoor, r)
								if err != nil {
									b.Error(err)
									return
								}
								if !res.Denied {
									adm.Add(1)
								}
							}
						}()
					}
					wg.Wait()
					maxAdmitted = max(maxAdmitted, adm.Load())
					over += max(0, adm.Load()-capacity)
				}
				b.ReportMetric(float64(maxAdmitted), "admitted-max")
				b.ReportMetric(float64(over)/float64(b.N), "over-admitted/burst")
				if over != 0 {
					b.Errorf("over-admitted %d", over)
				}
			})
		}
	}
}

// BenchmarkEdge compares with a fixed window at its edge, on the real clock:
// C = 20 per 1 s window (T = 50 ms). Per op, one request starts the client's
// bucket, then two bursts of 200 are fired 40 ms before and 10 ms after the
// first second ends. GCRA admits at most C + ⌊d/T⌋ in any interval d; the
// metric is the most admitted in any 200 ms (bound 20 + 4 = 24).
func BenchmarkEdge(b *testing.B) {
	env := dynamotest.New(b, "bench", map[string]string{
		"RATE_LIMIT_RPM": "20", "RATE_LIMIT_BURST": "0", "RATE_LIMIT_WINDOW": "1",
	})
	const burst, span = 200, 200 * time.Millisecond
	for _, callers := range callerCounts {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			ls := make([]*lim, 4)
			for i := range ls {
				l := build(b, env.NewClient(b), env.Config, clock.System{}, quiet())
				ls[i] = l
			}
			worst := 0
			for op := 0; op < b.N; op++ {
				r := req("198.20.0.1")
				r.userID = fmt.Sprintf("edge-%d-%d-%d", callers, op, time.Now().UnixNano())
				var mu sync.Mutex
				var times []time.Time
				fire := func() {
					var next atomic.Int64
					var wg sync.WaitGroup
					for c := 0; c < callers; c++ {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for i := next.Add(1); i <= burst; i = next.Add(1) {
								res, err := ls[int(i)%len(ls)].Limit(context.Background(), ratelimit.PolicyFrontdoor, r)
								if err == nil && !res.Denied {
									mu.Lock()
									times = append(times, time.Now())
									mu.Unlock()
								}
							}
						}()
					}
					wg.Wait()
				}
				t0 := time.Now()
				if res, _ := ls[0].Limit(context.Background(), ratelimit.PolicyFrontdoor, r); !res.Denied {
					times = append(times, time.Now())
				}
				time.Sleep(time.Until(t0.Add(960 * time.Millisecond)))
				fire()
				time.Sleep(time.Until(t0.Add(1010 * time.Millisecond)))
				fire()
				worst = max(worst, maxInSpan(times, span))
			}
			b.ReportMetric(float64(worst), "max-admitted-in-200ms")
		})
	}
}

func maxInSpan(ts []time.Time, span time.Duration) int {
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	best, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) > span {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}
