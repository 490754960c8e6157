package ratelimit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// maxEntries bounds each per-instance map (hints, deny cache, fallback buckets).
const maxEntries = 10000

// FailClosedRetryAfter is the Retry-After of a request refused because the
// store could not decide and RATE_LIMIT_FAIL_MODE is closed.
const FailClosedRetryAfter = 5 * time.Second

// Decision is the limiter's verdict on one request, in domain terms; the
// request layer turns it into headers, a status and an envelope.
type Decision struct {
	Policy  string
	Allowed bool // the request may proceed (a would-be deny in shadow mode is allowed)
	// Unavailable: the store could not decide and no local fallback applied
	// (RATE_LIMIT_FAIL_MODE=closed). There is no quota state to report;
	// Allowed is false unless shadow mode lets the request through.
	Unavailable bool
	Limit       int           // the policy's requests per window (RPM)
	Window      time.Duration // the policy's window
	Remaining   int           // requests admissible right now after this one
	// Reset is the next admission on a deny, the moment the bucket is full
	// again on an allow (microsecond precision).
	Reset time.Time
	// RetryAfter is how long a refused client should wait: until Reset, or
	// FailClosedRetryAfter when Unavailable. Zero when Allowed.
	RetryAfter time.Duration
	At         time.Time // when the decision was made
}

// Settings are the limiter's parameters (RATE_LIMITS_TABLE, the policies,
// RATE_LIMIT_FAIL_MODE, RATE_LIMIT_SHADOW) and the key its client keys are
// hashed with.
type Settings struct {
	Table    string
	Policies []Policy
	FailOpen bool // admit through a per-instance bucket when the store is unreachable
	Shadow   bool // decide and count, never refuse
	// Keys gives the deployment key's subkey that stored client keys are
	// HMACs under (keyring.Keyring); required.
	Keys KeySource
}

// KeySource gives the current deployment key's subkey for a purpose. A
// rotation changes it, so buckets start afresh under the new key.
type KeySource interface {
	Subkey(ctx context.Context, purpose string) ([]byte, error)
}

// keyPurpose names the limiter's subkey.
const keyPurpose = "ratelimit"

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

// Limiter is the rate limiter of API.md; safe for concurrent use, one per instance.
type Limiter struct {
	buckets  dynamoBuckets
	keys     KeySource
	local    []byte // per-instance key of the fallback buckets when the deployment key cannot be read
	policies map[string]Policy
	clock    clock.Clock
	logger   *slog.Logger
	failOpen bool
	shadow   bool

	mu           sync.Mutex
	hints        map[string]int64 // storage key → last TAT seen (µs): picks the first branch
	denies       map[string]int64 // storage key → next admission (µs): deny without a call until then
	fallbackTATs map[string]int64 // storage key → TAT of the per-instance fallback bucket

	allowed, denied, cachedDenies, shadowDenies, fallbacks, throttled, dbCalls atomic.Int64
}

// New builds the limiter. db should be the platform's client, whose calls are
// bounded by DB_TIMEOUT and fail fast through store.Breaker during an outage.
func New(db API, s Settings, c clock.Clock, logger *slog.Logger) (*Limiter, error) {
	if len(s.Policies) == 0 {
		return nil, errors.New("rate limiter: no policies")
	}
	if s.Keys == nil {
		return nil, errors.New("rate limiter: no key source for the client keys")
	}
	local := make([]byte, 32)
	if _, err := rand.Read(local); err != nil {
		return nil, fmt.Errorf("rate limiter: %w", err)
	}
	if c == nil {
		c = clock.System{}
	}
	if logger == nil {
		logger = slog.Default()
	}
	policies := make(map[string]Policy, len(s.Policies))
	for _, p := range s.Policies {
		policies[p.Name] = p
	}
	return &Limiter{
		buckets:      dynamoBuckets{db: db, table: s.Table},
		keys:         s.Keys,
		local:        local,
		policies:     policies,
		clock:        c,
		logger:       logger,
		failOpen:     s.FailOpen,
		shadow:       s.Shadow,
		hints:        map[string]int64{},
		denies:       map[string]int64{},
		fallbackTATs: map[string]int64{},
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

// Limit decides one request of clientKey (see ClientKey) under the named policy.
func (l *Limiter) Limit(ctx context.Context, policy, clientKey string) (Decision, error) {
	p, ok := l.policies[policy]
	if !ok {
		return Decision{}, fmt.Errorf("unknown rate limit policy %q", policy)
	}
	secret, err := l.keys.Subkey(ctx, keyPurpose)
	if err != nil {
		if !store.IsUnavailable(err) {
			return Decision{}, err
		}
		// No deployment key yet and the store unreachable: no bucket can be
		// read anyway, so decide as in any outage, by a per-instance key.
		return l.fallback(ctx, p, StorageKey(p.Name, clientKey, l.local), micros(l.clock.Now()), err), nil
	}
	return l.decide(ctx, p, StorageKey(p.Name, clientKey, secret))
}

// StorageKey returns the item key of clientKey's bucket under the named
// policy (tests and tools read the item with it).
func (l *Limiter) StorageKey(ctx context.Context, policy, clientKey string) (string, error) {
	secret, err := l.keys.Subkey(ctx, keyPurpose)
	if err != nil {
		return "", err
	}
	return StorageKey(policy, clientKey, secret), nil
}

// CachedDeny reports, without a call, whether this instance already knows
// the client's next request under the named policy will be refused (its deny
// cache). The request layer asks before starting reads that would be wasted.
func (l *Limiter) CachedDeny(ctx context.Context, policy, clientKey string) bool {
	p, ok := l.policies[policy]
	if !ok {
		return false
	}
	secret, err := l.keys.Subkey(ctx, keyPurpose)
	if err != nil {
		return false
	}
	key := StorageKey(p.Name, clientKey, secret)
	now := micros(l.clock.Now())
	l.mu.Lock()
	until, cached := l.denies[key]
	l.mu.Unlock()
	return cached && now < until
}

// decide decides one request of the bucket key (a StorageKey) under p.
func (l *Limiter) decide(ctx context.Context, p Policy, key string) (Decision, error) {
	now := micros(l.clock.Now())

	// A remembered deny is still true: other instances can only push the TAT
	// later, so the next admission cannot come earlier than remembered.
	l.mu.Lock()
	until, cached := l.denies[key]
	hint := l.hints[key]
	l.mu.Unlock()
	if cached && now < until {
		l.cachedDenies.Add(1)
		return l.verdict(ctx, p, Step{Allowed: false, TAT: until + p.Tau, Now: now}, key), nil
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
		return l.verdict(ctx, p, Step{Allowed: false, TAT: now + p.Tau + p.T, Now: now}, key), nil
	case store.IsThrottled(err):
		// A hot key: DynamoDB refuses writes to this one item. That is the
		// client's own doing and no reason to open the gate for it.
		l.throttled.Add(1)
		l.logger.WarnContext(ctx, "rate limit store throttled; refusing", "event", "ratelimit_throttled", "policy", p.Name, "key", logKey(key))
		return l.verdict(ctx, p, Step{Allowed: false, TAT: now + p.Tau + int64(time.Second/time.Microsecond), Now: now}, key), nil
	case store.IsUnavailable(err):
		return l.fallback(ctx, p, key, now, err), nil
	default:
		return Decision{}, err
	}

	l.mu.Lock()
	l.remember(l.hints, key, out.TAT, now)
	if !out.Allowed {
		l.remember(l.denies, key, p.NextAdmission(out.Step), now)
	}
	l.mu.Unlock()
	if out.Allowed {
		l.allowed.Add(1)
	} else {
		l.denied.Add(1)
	}
	return l.verdict(ctx, p, out.Step, key), nil
}

// fallback decides while DynamoDB cannot be reached: open admits through a
// per-instance bucket of the same policy (so one instance still cannot admit
// more than C + ⌊d/T⌋ for a client), closed refuses.
func (l *Limiter) fallback(ctx context.Context, p Policy, key string, now int64, cause error) Decision {
	n := l.fallbacks.Add(1)
	mode := "closed"
	if l.failOpen {
		mode = "open"
	}
	l.logger.WarnContext(ctx, "rate limit store unavailable; falling back",
		"event", "ratelimit_fallback", "mode", mode, "policy", p.Name, "key", logKey(key), "fallbacks", n, "err", cause)
	if !l.failOpen {
		d := Decision{Policy: p.Name, Unavailable: true, Allowed: l.shadow, At: time.UnixMicro(now)}
		if !l.shadow {
			d.RetryAfter = FailClosedRetryAfter
		}
		return d
	}
	l.mu.Lock()
	s := p.Step(l.fallbackTATs[key], now)
	if s.Allowed {
		l.remember(l.fallbackTATs, key, s.TAT, now)
	}
	l.mu.Unlock()
	return l.verdict(ctx, p, s, key)
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

// verdict turns a GCRA step into a Decision. Shadow mode counts and logs a
// deny but lets the request through, still reporting the exhausted quota.
func (l *Limiter) verdict(ctx context.Context, p Policy, s Step, key string) Decision {
	reset := p.Reset(s)
	d := Decision{
		Policy: p.Name, Allowed: s.Allowed, Limit: p.RPM, Window: p.Window,
		Remaining: p.Remaining(s), Reset: time.UnixMicro(reset), At: time.UnixMicro(s.Now),
	}
	if s.Allowed {
		return d
	}
	if l.shadow {
		l.shadowDenies.Add(1)
		l.logger.InfoContext(ctx, "rate limit would deny (shadow mode)", "event", "ratelimit_shadow_deny", "policy", p.Name, "key", logKey(key))
		d.Allowed = true
		return d
	}
	d.RetryAfter = time.Duration(reset-s.Now) * time.Microsecond
	return d
}
