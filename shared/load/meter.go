package load

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
)

// CacheFor is how long one instance reuses a measurement (API.md: at most
// 2 s). A failed refresh is remembered for as long, so with a slow or
// unreachable store an instance makes at most one refresh per CacheFor.
const CacheFor = 2 * time.Second

// Snapshot is the load of the whole system at one moment, measured from the
// minute counters of all functions and instances, plus the unexpired overrides.
type Snapshot struct {
	At time.Time
	// RequestsLastMinute is the estimate of all requests answered in the
	// minute before At (weighted sliding window over two minute buckets, see
	// Meter): admitted ones, free probes and denials alike.
	RequestsLastMinute int64
	// AdmittedLastMinute is the same estimate for admitted requests only:
	// those that spent quota under a limiter policy and were let through
	// (metrics.Counts.Admitted). It is the traffic the limiter bounds, and the
	// only traffic the load counts: a client's free status probes and its
	// denials cannot raise everyone's load.
	AdmittedLastMinute int64
	// MeasuredLoad is AdmittedLastMinute / TRAFFIC_CAPACITY_RPM, in [0, 1].
	MeasuredLoad float64
	// OverrideLoad is the sum of unexpired overrides, in [0, 1].
	OverrideLoad float64
	// CurrentLoad is MeasuredLoad + OverrideLoad, clamped to [0, 1].
	CurrentLoad float64
	// ActiveConnections is Little's law over the last minute (arrival rate ×
	// mean duration = busy time / window) over every answered request (each
	// one occupied an instance for its duration), plus the override
	// connections, at most 50000. It is reported, never shed on.
	ActiveConnections float64
	// OverrideConnections is the sum of unexpired override connections.
	OverrideConnections int
	// SimulateLoad is true while at least one override is unexpired.
	SimulateLoad bool
}

// SheddingLoad is the load that decides shedding: overrides count only when
// LOAD_SIMULATION_ENABLED; otherwise they are reported but never shed traffic.
func (s Snapshot) SheddingLoad(simulationEnabled bool) float64 {
	if simulationEnabled {
		return s.CurrentLoad
	}
	return s.MeasuredLoad
}

// MinuteReader is the part of metrics.Counters the meter reads.
type MinuteReader interface {
	Minutes(ctx context.Context, from, to time.Time) ([]metrics.Minute, error)
}

// OverrideReader is the part of Overrides the meter reads.
type OverrideReader interface {
	Current(ctx context.Context) (OverrideTotals, error)
}

// Meter computes Snapshots and caches one per instance for at most CacheFor.
//
// "The last minute" is a weighted sliding window over the two minute buckets
// that overlap it: at hh:mm:ss the estimate is the current minute's count
// plus the previous minute's count times the part of the previous minute that
// still lies inside the window ((60-ss)/60). It costs one Query per metric
// shard for two buckets, moves smoothly (no cliff at the minute boundary) and
// is exact when traffic is even within a minute.
//
// A refresh reads the counters and the overrides concurrently, so a slow
// store costs one read's latency, not two. Refreshes are serialised, and a
// failed one is cached like a successful one, for CacheFor: a burst of
// requests, or every request during an outage, makes at most one refresh per
// instance per CacheFor.
type Meter struct {
	minutes     MinuteReader
	overrides   OverrideReader
	capacityRPM int
	clock       clock.Clock

	refresh sync.Mutex // serialises refreshes, so a burst of requests makes one read

	mu      sync.Mutex // guards the fields below (never held during a read)
	last    Snapshot   // the last successful measurement
	hasLast bool
	valid   bool      // last may be served from the cache (false after Invalidate)
	failErr error     // the last refresh's error, when it failed
	failAt  time.Time // when it failed
	gen     uint64    // bumped by Invalidate: a refresh begun before it is not cached
}

// NewMeter returns a meter over the shared minute counters and the override
// store (nil: no overrides); capacityRPM is TRAFFIC_CAPACITY_RPM.
func NewMeter(counters *metrics.Counters, overrides *Overrides, capacityRPM int, c clock.Clock) *Meter {
	var or OverrideReader
	if overrides != nil {
		or = overrides
	}
	return NewMeterFrom(counters, or, capacityRPM, c)
}

// NewMeterFrom is NewMeter over interfaces.
func NewMeterFrom(minutes MinuteReader, overrides OverrideReader, capacityRPM int, c clock.Clock) *Meter {
	if capacityRPM < 1 {
		capacityRPM = 1
	}
	return &Meter{minutes: minutes, overrides: overrides, capacityRPM: capacityRPM, clock: c}
}

// CapacityRPM returns TRAFFIC_CAPACITY_RPM as the meter uses it.
func (m *Meter) CapacityRPM() int { return m.capacityRPM }

// within reports whether at is no older than d at now (a time after now, from
// a clock moved back, is not).
func within(now, at time.Time, d time.Duration) bool {
	return !now.Before(at) && now.Sub(at) < d
}

// Snapshot returns the current load, from this instance's cache when it is
// younger than CacheFor. A refresh that failed less than CacheFor ago returns
// its error again without another read; Last still has the last success.
func (m *Meter) Snapshot(ctx context.Context) (Snapshot, error) {
	m.refresh.Lock()
	defer m.refresh.Unlock()
	now := m.clock.Now()
	m.mu.Lock()
	switch {
	case m.valid && within(now, m.last.At, CacheFor):
		s := m.last
		m.mu.Unlock()
		return s, nil
	case m.failErr != nil && within(now, m.failAt, CacheFor):
		err := m.failErr
		m.mu.Unlock()
		return Snapshot{}, err
	}
	gen := m.gen
	m.mu.Unlock()

	s, err := m.measure(ctx, now)
	m.mu.Lock()
	defer m.mu.Unlock()
	if gen != m.gen {
		// Invalidated while reading (e.g. an override was just added): the
		// answer stands for this caller, but is not cached.
		if err == nil {
			m.last, m.hasLast = s, true
		}
		return s, err
	}
	if err != nil {
		// The caller giving up says nothing about the store: the next
		// caller tries again. Any other failure (the store's error, a
		// timeout) is remembered for CacheFor.
		if !errors.Is(ctx.Err(), context.Canceled) {
			m.failErr, m.failAt = err, now
		}
		return Snapshot{}, err
	}
	m.last, m.hasLast, m.valid, m.failErr = s, true, true, nil
	return s, nil
}

// Last returns the most recent snapshot this instance measured successfully,
// if any, for reporting when a fresh one cannot be read. Its At says how old
// it is.
func (m *Meter) Last() (Snapshot, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last, m.hasLast
}

// Invalidate makes the next Snapshot read again (e.g. after this instance
// added an override), whatever is cached, success or failure. Last keeps the
// last measurement.
func (m *Meter) Invalidate() {
	m.mu.Lock()
	m.valid, m.failErr = false, nil
	m.gen++
	m.mu.Unlock()
}

// measure reads the two buckets of the window and the overrides concurrently;
// the first failure cancels the other read.
func (m *Meter) measure(ctx context.Context, now time.Time) (Snapshot, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cur := now.Truncate(time.Minute)
	var (
		ms     []metrics.Minute
		totals OverrideTotals
		ovErr  error
		wg     sync.WaitGroup
	)
	if m.overrides != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if totals, ovErr = m.overrides.Current(ctx); ovErr != nil {
				cancel()
			}
		}()
	}
	ms, err := m.minutes.Minutes(ctx, cur.Add(-time.Minute), cur.Add(time.Minute))
	if err != nil {
		cancel()
	}
	wg.Wait()
	// Report the error that caused the failure, not the other read's
	// cancellation it led to.
	switch {
	case err != nil && (ovErr == nil || !errors.Is(err, context.Canceled)):
		return Snapshot{}, fmt.Errorf("read minute counters: %w", err)
	case ovErr != nil:
		return Snapshot{}, fmt.Errorf("read load overrides: %w", ovErr)
	}
	return compute(now, ms, totals, m.capacityRPM), nil
}

// compute is the pure part of a measurement, separate so it can be tested exhaustively.
func compute(now time.Time, ms []metrics.Minute, ov OverrideTotals, capacityRPM int) Snapshot {
	cur := now.Truncate(time.Minute)
	prevWeight := 1 - float64(now.Sub(cur))/float64(time.Minute)
	var requests, admitted, durationMs float64
	for _, m := range ms {
		w := 0.0
		switch {
		case m.Start.Equal(cur):
			w = 1
		case m.Start.Equal(cur.Add(-time.Minute)):
			w = prevWeight
		}
		requests += w * float64(m.Requests)
		admitted += w * float64(m.Admitted)
		durationMs += w * float64(m.DurationMs)
	}
	// Only admitted requests load the system as far as shedding is concerned:
	// free probes and denials are not bounded by any client's quota.
	measured := clamp01(admitted / float64(capacityRPM))
	// Little's law: L = λW = (requests/60 s) × (durationMs/requests) = busy time / window.
	littles := durationMs / float64(time.Minute/time.Millisecond)
	return Snapshot{
		At:                  now,
		RequestsLastMinute:  int64(math.Round(requests)),
		AdmittedLastMinute:  int64(math.Round(admitted)),
		MeasuredLoad:        measured,
		OverrideLoad:        clamp01(ov.Load),
		CurrentLoad:         clamp01(measured + ov.Load),
		ActiveConnections:   math.Min(littles+float64(ov.Connections), MaxOverrideConnections),
		OverrideConnections: ov.Connections,
		SimulateLoad:        ov.Count > 0,
	}
}

func clamp01(f float64) float64 {
	if math.IsNaN(f) || f < 0 {
		return 0
	}
	return math.Min(f, 1)
}
