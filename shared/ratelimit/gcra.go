// Package ratelimit is the distributed rate limiter every function applies
// before doing any work: GCRA (the generic cell rate algorithm) over one
// DynamoDB item per (policy, hashed client key), decided by a conditional
// UpdateItem so that no client is admitted more than C + ⌊d/T⌋ requests in any
// interval d, however many instances serve it.
package ratelimit

import (
	"fmt"
	"time"
)

// Policy names (API.md "Rate limits").
const (
	PolicyFrontdoor = "frontdoor"
	PolicyAPI       = "api"
)

// Policy is one bucket shape. All times are microseconds: fine enough for any
// RPM the config allows, and coarse enough that tau cannot overflow int64 even
// with the largest window and burst.
type Policy struct {
	Name   string
	RPM    int           // X-RateLimit-Limit and q=
	Burst  int           // extra capacity above RPM
	Window time.Duration // w=
	// T is the emission interval window/RPM, rounded up to a microsecond so
	// rounding can only make the limiter stricter, never looser.
	T int64
	// Tau is the burst tolerance (C-1)·T: a request is admitted while the
	// theoretical arrival time (TAT) is at most now+Tau.
	Tau int64
}

// NewPolicy builds a policy from RPM, burst and window; rpm must be ≥ 1.
func NewPolicy(name string, rpm, burst int, window time.Duration) (Policy, error) {
	if rpm < 1 || burst < 0 || window < time.Microsecond {
		return Policy{}, fmt.Errorf("rate limit policy %s: rpm %d, burst %d, window %v out of range", name, rpm, burst, window)
	}
	w := window.Microseconds()
	t := (w + int64(rpm) - 1) / int64(rpm)
	return Policy{Name: name, RPM: rpm, Burst: burst, Window: window, T: t, Tau: int64(rpm+burst-1) * t}, nil
}

// Capacity is C = RPM + BURST: what an idle client may send at once.
func (p Policy) Capacity() int { return p.RPM + p.Burst }

// Step is the outcome of one GCRA step.
type Step struct {
	Allowed bool
	// TAT is the bucket's theoretical arrival time after the decision (µs):
	// the new one on an allow, the unchanged one on a deny.
	TAT int64
	Now int64 // µs
}

// Step is GCRA on an in-memory TAT (0 = no state): the reference the DynamoDB
// path must agree with, and the per-instance fallback bucket.
func (p Policy) Step(tat, now int64) Step {
	base := max(tat, now)
	if base > now+p.Tau {
		return Step{Allowed: false, TAT: tat, Now: now}
	}
	return Step{Allowed: true, TAT: base + p.T, Now: now}
}

// Remaining is how many more requests would be admitted right now.
func (p Policy) Remaining(d Step) int {
	if !d.Allowed {
		return 0
	}
	slack := d.Now + p.Tau - max(d.TAT, d.Now)
	if slack < 0 {
		return 0
	}
	return int(slack/p.T) + 1
}

// NextAdmission is when (µs) the next request will be admitted: now when it
// would be admitted at once.
func (p Policy) NextAdmission(d Step) int64 {
	return max(d.TAT-p.Tau, d.Now)
}

// Reset is the epoch-µs moment X-RateLimit-Reset names: the next admission on
// a deny, the moment the bucket is full again on an allow.
func (p Policy) Reset(d Step) int64 {
	if !d.Allowed {
		return p.NextAdmission(d)
	}
	return max(d.TAT, d.Now)
}

func micros(t time.Time) int64 { return t.UnixMicro() }
