package load

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
)

// CacheFor is how long one instance reuses a snapshot (API.md: at most 2 s).
const CacheFor = 2 * time.Second

// Snapshot is the load of the whole system at one moment, measured from the
// minute counters of all functions and instances, plus the unexpired overrides.
type Snapshot struct {
	At time.Time
	// RequestsLastMinute is the estimate of requests finished in the minute
	// before At (weighted sliding window over two minute buckets, see Meter).
	RequestsLastMinute int64
	// MeasuredLoad is RequestsLastMinute / TRAFFIC_CAPACITY_RPM, in [0, 1].
	MeasuredLoad float64
	// OverrideLoad is the sum of unexpired overrides, in [0, 1].
	OverrideLoad float64
	// CurrentLoad is MeasuredLoad + OverrideLoad, clamped to [0, 1].
	CurrentLoad float64
	// ActiveConnections is Little's law over the last minute (arrival rate ×
	// mean duration = busy time / window) plus the override connections,
	// at most 50000.
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
type Meter struct {
	minutes     MinuteReader
	overrides   OverrideReader
	capacityRPM int
	clock       clock.Clock

	mu      sync.Mutex // serialises refreshes, so a burst of requests makes one read
	cached  Snapshot
	hasSnap bool
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

// Snapshot returns the current load, from this instance's cache when it is
// younger than CacheFor.
func (m *Meter) Snapshot(ctx context.Context) (Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	if m.hasSnap && !now.Before(m.cached.At) && now.Sub(m.cached.At) < CacheFor {
		return m.cached, nil
	}
	s, err := m.measure(ctx, now)
	if err != nil {
		return Snapshot{}, err
	}
	m.cached, m.hasSnap = s, true
	return s, nil
}

// Last returns the most recent snapshot this instance measured, if any, for
// reporting when a fresh one cannot be read.
func (m *Meter) Last() (Snapshot, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cached, m.hasSnap
}

// Invalidate drops the cached snapshot, e.g. after this instance added an override.
func (m *Meter) Invalidate() {
	m.mu.Lock()
	m.hasSnap = false
	m.mu.Unlock()
}

func (m *Meter) measure(ctx context.Context, now time.Time) (Snapshot, error) {
	cur := now.Truncate(time.Minute)
	ms, err := m.minutes.Minutes(ctx, cur.Add(-time.Minute), cur.Add(time.Minute))
	if err != nil {
		return Snapshot{}, fmt.Errorf("read minute counters: %w", err)
	}
	var totals OverrideTotals
	if m.overrides != nil {
		if totals, err = m.overrides.Current(ctx); err != nil {
			return Snapshot{}, fmt.Errorf("read load overrides: %w", err)
		}
	}
	return compute(now, ms, totals, m.capacityRPM), nil
}

// compute is the pure part of a measurement, separate so it can be tested exhaustively.
func compute(now time.Time, ms []metrics.Minute, ov OverrideTotals, capacityRPM int) Snapshot {
	cur := now.Truncate(time.Minute)
	prevWeight := 1 - float64(now.Sub(cur))/float64(time.Minute)
	var requests, durationMs float64
	for _, m := range ms {
		switch {
		case m.Start.Equal(cur):
			requests += float64(m.Requests)
			durationMs += float64(m.DurationMs)
		case m.Start.Equal(cur.Add(-time.Minute)):
			requests += prevWeight * float64(m.Requests)
			durationMs += prevWeight * float64(m.DurationMs)
		}
	}
	measured := clamp01(requests / float64(capacityRPM))
	// Little's law: L = λW = (requests/60 s) × (durationMs/requests) = busy time / window.
	littles := durationMs / float64(time.Minute/time.Millisecond)
	return Snapshot{
		At:                  now,
		RequestsLastMinute:  int64(math.Round(requests)),
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
