package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// Messages of a deny, as the original's rate_limit answer.
const (
	denyMessage = "Rate limit exceeded. Please slow down your requests."
	denyAdvice  = "Consider implementing exponential backoff in your client"
)

// maxEntries bounds each per-instance map (hints, deny cache, fallback buckets).
const maxEntries = 10000

// Stats counts the limiter's decisions on this instance.
type Stats struct {
	Allowed      int64 // admitted by DynamoDB
	Denied       int64 // refused by DynamoDB (or a contended double race)
	CachedDenies int64 // refused from the deny cache, no DynamoDB call
	ShadowDenies int64 // would have been refused, admitted because of RATE_LIMIT_SHADOW
	Fallbacks    int64 // DynamoDB unreachable or timing out: decided per RATE_LIMIT_FAIL_MODE
	Throttled    int64 // DynamoDB throttled the bucket's key: refused, never opened
	DBCalls      int64 // UpdateItem calls made
}

// Limiter is the rate limiter of API.md. It implements httpapi.Limiter and is
// safe for concurrent use; one per instance.
type Limiter struct {
	buckets  dynamoBuckets
	policies map[string]Policy
	clock    clock.Clock
	logger   *slog.Logger
	trusted  []netip.Prefix
	failOpen bool
	shadow   bool
	status   int

	mu     sync.Mutex
	hints  map[string]int64 // storage key → last TAT seen (µs): picks the first branch
	denies map[string]int64 // storage key → next admission (µs): deny without a call until then
	local  map[string]int64 // storage key → TAT of the per-instance fallback bucket

	allowed, denied, cachedDenies, shadowDenies, fallbacks, throttled, dbCalls atomic.Int64
}

// New builds the limiter from the config: RATE_LIMITS_TABLE, the two
// policies, RATE_LIMIT_FAIL_MODE, RATE_LIMIT_SHADOW, RATE_LIMIT_STATUS,
// TRUSTED_PROXY_CIDRS. db should be the platform's client, whose calls are
// bounded by DB_TIMEOUT and fail fast through store.Breaker during an outage.
func New(db API, cfg config.Config, c clock.Clock, logger *slog.Logger) (*Limiter, error) {
	policies, err := Policies(cfg)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	status := cfg.RateLimitStatus
	if status != http.StatusServiceUnavailable {
		status = http.StatusTooManyRequests
	}
	return &Limiter{
		buckets:  dynamoBuckets{db: db, table: cfg.Tables.RateLimits},
		policies: policies,
		clock:    c,
		logger:   logger,
		trusted:  cfg.TrustedProxies,
		failOpen: cfg.RateLimitFailMode != "closed",
		shadow:   cfg.RateLimitShadow,
		status:   status,
		hints:    map[string]int64{},
		denies:   map[string]int64{},
		local:    map[string]int64{},
	}, nil
}

// Policy returns a configured policy by name.
func (l *Limiter) Policy(name string) (Policy, bool) {
	p, ok := l.policies[name]
	return p, ok
}

// Stats returns this instance's counters.
func (l *Limiter) Stats() Stats {
	return Stats{
		Allowed: l.allowed.Load(), Denied: l.denied.Load(), CachedDenies: l.cachedDenies.Load(),
		ShadowDenies: l.shadowDenies.Load(), Fallbacks: l.fallbacks.Load(), Throttled: l.throttled.Load(),
		DBCalls: l.dbCalls.Load(),
	}
}

// Limit decides one request under policy (httpapi.Limiter).
func (l *Limiter) Limit(ctx context.Context, policy string, r *httpapi.Request) (httpapi.LimitResult, error) {
	p, ok := l.policies[policy]
	if !ok {
		return httpapi.LimitResult{}, fmt.Errorf("unknown rate limit policy %q", policy)
	}
	return l.Decide(ctx, p, StorageKey(p.Name, ClientKey(r, l.trusted)), loggerOf(r, l.logger))
}

func loggerOf(r *httpapi.Request, def *slog.Logger) *slog.Logger {
	if r != nil && r.Logger != nil {
		return r.Logger
	}
	return def
}

// Decide decides one request of the bucket key (a StorageKey) under p.
func (l *Limiter) Decide(ctx context.Context, p Policy, key string, log *slog.Logger) (httpapi.LimitResult, error) {
	now := micros(l.clock.Now())

	// A remembered deny is still true: other instances can only push the TAT
	// later, so the next admission cannot come earlier than remembered.
	l.mu.Lock()
	until, cached := l.denies[key]
	hint := l.hints[key]
	l.mu.Unlock()
	if cached && now < until {
		l.cachedDenies.Add(1)
		return l.result(p, Decision{Allowed: false, TAT: until + p.Tau, Now: now}, key, log), nil
	}

	// DB_TIMEOUT bounds each call in the client, and the client's
	// store.Breaker makes calls fail fast for a second after a timeout, so
	// during an outage a decision falls back at once instead of waiting again.
	out, err := l.buckets.decide(ctx, key, p, now, hint)
	l.dbCalls.Add(int64(out.Calls))
	switch {
	case err == nil:
	case errors.Is(err, ErrContended):
		// Both writes lost a race: refuse (never admit without a write), one T to retry.
		l.denied.Add(1)
		return l.result(p, Decision{Allowed: false, TAT: now + p.Tau + p.T, Now: now}, key, log), nil
	case store.IsThrottled(err):
		// A hot key: DynamoDB refuses writes to this one item. That is the
		// client's own doing and no reason to open the gate for it.
		l.throttled.Add(1)
		log.WarnContext(ctx, "rate limit store throttled; refusing", "event", "ratelimit_throttled", "policy", p.Name, "key", logKey(key))
		return l.result(p, Decision{Allowed: false, TAT: now + p.Tau + int64(time.Second/time.Microsecond), Now: now}, key, log), nil
	case store.IsUnavailable(err):
		return l.fallback(ctx, p, key, now, err, log)
	default:
		return httpapi.LimitResult{}, err
	}

	l.mu.Lock()
	l.remember(l.hints, key, out.TAT, now)
	if !out.Allowed {
		l.remember(l.denies, key, p.NextAdmission(out.Decision), now)
	}
	l.mu.Unlock()
	if out.Allowed {
		l.allowed.Add(1)
		return l.result(p, out.Decision, key, log), nil
	}
	l.denied.Add(1)
	return l.result(p, out.Decision, key, log), nil
}

// fallback decides while DynamoDB cannot be reached: open admits through a
// per-instance bucket of the same policy (so one instance still cannot admit
// more than C + ⌊d/T⌋ for a client), closed answers 503.
func (l *Limiter) fallback(ctx context.Context, p Policy, key string, now int64, cause error, log *slog.Logger) (httpapi.LimitResult, error) {
	n := l.fallbacks.Add(1)
	mode := "closed"
	if l.failOpen {
		mode = "open"
	}
	log.WarnContext(ctx, "rate limit store unavailable; falling back",
		"event", "ratelimit_fallback", "mode", mode, "policy", p.Name, "key", logKey(key), "fallbacks", n, "err", cause)
	if !l.failOpen {
		if l.shadow {
			return httpapi.LimitResult{}, nil
		}
		return httpapi.LimitResult{Denied: true, Deny: httpapi.ServiceUnavailable(5 * time.Second)}, nil
	}
	l.mu.Lock()
	d := p.Step(l.local[key], now)
	if d.Allowed {
		l.remember(l.local, key, d.TAT, now)
	}
	l.mu.Unlock()
	return l.result(p, d, key, log), nil
}

// remember stores v under key in m (l.mu held), pruning entries that no
// longer matter (values at or before now) when the map is full. If it is
// still full the entry is skipped: every map only saves calls or memory,
// never decides an admission on its own.
func (l *Limiter) remember(m map[string]int64, key string, v, now int64) {
	if _, ok := m[key]; !ok && len(m) >= maxEntries {
		for k, old := range m {
			if old <= now {
				delete(m, k)
			}
		}
		if len(m) >= maxEntries {
			return
		}
	}
	m[key] = v
}

// result renders a decision as headers and, on a deny, the contract's error.
// Shadow mode counts and logs a deny but lets the request through.
func (l *Limiter) result(p Policy, d Decision, key string, log *slog.Logger) httpapi.LimitResult {
	now := d.Now
	reset := p.Reset(d)
	remaining := p.Remaining(d)
	untilReset := time.Duration(reset-now) * time.Microsecond
	h := map[string]string{
		"X-RateLimit-Limit":     strconv.Itoa(p.RPM),
		"X-RateLimit-Remaining": strconv.Itoa(remaining),
		"X-RateLimit-Reset":     strconv.FormatInt(ceilDiv(reset, 1000), 10), // epoch ms
		"RateLimit-Policy":      fmt.Sprintf("%q;q=%d;w=%d", p.Name, p.RPM, int64(p.Window/time.Second)),
		"RateLimit":             fmt.Sprintf("%q;r=%d;t=%d", p.Name, remaining, ceilDiv(int64(untilReset/time.Microsecond), 1_000_000)),
	}
	if d.Allowed {
		return httpapi.LimitResult{Headers: h}
	}
	retry := httpapi.CeilSeconds(untilReset)
	if l.shadow {
		l.shadowDenies.Add(1)
		log.Info("rate limit would deny (shadow mode)", "event", "ratelimit_shadow_deny", "policy", p.Name, "key", logKey(key))
		return httpapi.LimitResult{Headers: h}
	}
	h["RateLimit"] = fmt.Sprintf("%q;r=0;t=%d", p.Name, retry)
	e := httpapi.NewError(l.status, httpapi.CodeRateLimit, denyMessage).
		WithHeader("Retry-After", strconv.FormatInt(retry, 10)).
		WithExtra("retryAfter", retry).
		WithExtra("severity", "low").
		WithExtra("advice", denyAdvice)
	return httpapi.LimitResult{Headers: h, Denied: true, Deny: e}
}

func ceilDiv(a, b int64) int64 {
	if a <= 0 {
		return a / b
	}
	return (a + b - 1) / b
}
