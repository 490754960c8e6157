// Package monitor computes the system monitor's figures (API.md
// "/api/system-monitor") from the minute counters of all functions and
// instances, the load, the peaks and the alerts, and runs the scheduled alert
// evaluation. The HTTP shapes are monitorapi's.
package monitor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/alerts"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/load"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
)

// Window of the totals (API.md: total, successful, failed, throttled and
// availability count the last 24 h).
const totalsWindow = 24 * time.Hour

// cloudWatchTimeout bounds one history read from CloudWatch (all its pages).
const cloudWatchTimeout = 8 * time.Second

// MinuteReader reads per-minute counters summed over shards or functions:
// metrics.Counters (DynamoDB) and metrics.CloudWatchHistory both are.
type MinuteReader interface {
	Minutes(ctx context.Context, from, to time.Time) ([]metrics.Minute, error)
}

// minutesOf serves minutes the monitor has already read to the load meter,
// so the load costs no second read of the counters.
type minutesOf []metrics.Minute

func (ms minutesOf) Minutes(_ context.Context, from, to time.Time) ([]metrics.Minute, error) {
	var out []metrics.Minute
	for _, m := range ms {
		if !m.Start.Before(from) && m.Start.Before(to) {
			out = append(out, m)
		}
	}
	return out, nil
}

// Settings are the monitor's parameters.
type Settings struct {
	Realtime      bool   // METRICS_REALTIME: request figures exist only with the counters
	Source        string // METRICS_HISTORY_SOURCE: "dynamodb" or "cloudwatch"
	CapacityRPM   int    // TRAFFIC_CAPACITY_RPM
	MemoryLimitMB int    // AWS_LAMBDA_FUNCTION_MEMORY_SIZE
	Shards        int    // METRIC_SHARDS
	MetricsTable  string
	AlertsTable   string
	OverrideTable string
	OverrideTTL   time.Duration
}

// API is the part of the DynamoDB client the monitor's stores use.
type API interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	dynamodb.QueryAPIClient
}

// Monitor computes the figures of /api/system-monitor and runs the alert
// evaluation. Every figure is measured across all functions and instances, or
// nil (JSON null) when it cannot be measured.
type Monitor struct {
	clock    clock.Clock
	realtime bool // METRICS_REALTIME: request figures exist only with the counters
	counters MinuteReader
	// The load (API.md's currentLoad, activeConnections) is shared/load's
	// meter over the counters read here plus the unexpired overrides.
	overrides   load.OverrideReader
	capacityRPM int
	peaks       *metrics.Peaks
	reported    *metrics.Reported
	alerts      *alerts.Store
	history     MinuteReader
	source      string // "dynamodb" or "cloudwatch"
	memory      func() *float64
	logger      *slog.Logger
}

// New builds the monitor. history serves the history endpoint (nil: the
// DynamoDB minute counters, as METRICS_HISTORY_SOURCE=dynamodb); memory is
// the instance's memory gauge (nil: metrics.MemoryUsage of the configured size).
func New(db API, s Settings, history MinuteReader, memory func() *float64, clk clock.Clock, logger *slog.Logger) (*Monitor, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if memory == nil {
		limit := s.MemoryLimitMB
		memory = func() *float64 { return metrics.MemoryUsage(limit) }
	}
	counters := metrics.NewCounters(db, s.MetricsTable, s.Shards, clk)
	switch s.Source {
	case "dynamodb":
		if history == nil {
			history = counters
		}
	case "cloudwatch":
		if history == nil {
			return nil, fmt.Errorf("history source cloudwatch needs a CloudWatch reader")
		}
	default:
		return nil, fmt.Errorf("unknown METRICS_HISTORY_SOURCE %q", s.Source)
	}
	return &Monitor{
		clock:       clk,
		realtime:    s.Realtime,
		counters:    counters,
		overrides:   load.NewOverrides(db, s.OverrideTable, s.OverrideTTL, clk),
		capacityRPM: s.CapacityRPM,
		peaks:       metrics.NewPeaks(db, s.MetricsTable, clk),
		reported:    metrics.NewReported(db, s.MetricsTable, clk),
		alerts:      alerts.NewStore(db, s.AlertsTable, clk),
		history:     history,
		source:      s.Source,
		memory:      memory,
		logger:      logger,
	}, nil
}

// Source is where the history is read from: "dynamodb" or "cloudwatch".
func (m *Monitor) Source() string { return m.source }

// Now is the monitor's clock.
func (m *Monitor) Now() time.Time { return m.clock.Now() }

// Alerts lists the firing or unacknowledged alerts of the last 7 days.
func (m *Monitor) Alerts(ctx context.Context) ([]alerts.Alert, error) { return m.alerts.List(ctx) }

// Acknowledge marks an alert acknowledged by username (idempotent).
func (m *Monitor) Acknowledge(ctx context.Context, id, username string) (alerts.Alert, error) {
	return m.alerts.Acknowledge(ctx, id, username)
}

// Report stores a posted sample in the reported series, apart from every
// measured figure.
func (m *Monitor) Report(ctx context.Context, s metrics.Sample) error { return m.reported.Put(ctx, s) }

// Figures are the measured figures at one moment.
type Figures struct {
	Now time.Time

	// Last 24 h (the current minute included).
	Total, Successful, Failed, Throttled *int64
	Availability                         *float64 // percent

	// The last complete minute.
	Rate                *int64
	AverageResponseTime *float64 // ms
	SlowQueries         *int64
	ErrorRate           *float64 // percent

	Memory            *float64 // fraction
	CurrentLoad       *float64
	PeakLoad          *float64
	ActiveConnections *float64
}

// Figures measures the current figures; withPeak also records the current
// load as a peak candidate (two more calls), for the endpoints that show it.
func (m *Monitor) Figures(ctx context.Context, withPeak bool) (Figures, error) {
	now := m.clock.Now()
	f := Figures{Now: now, Memory: m.memory()}
	if !m.realtime {
		// METRICS_REALTIME=off: the counters are not written, so the
		// request figures and the load are unknown here (CloudWatch has them).
		return f, nil
	}
	cur := now.Truncate(time.Minute)
	last := cur.Add(-time.Minute)
	ms, err := m.counters.Minutes(ctx, cur.Add(-totalsWindow+time.Minute), cur.Add(time.Minute))
	if err != nil {
		return Figures{}, fmt.Errorf("read minute counters: %w", err)
	}
	var day, minute metrics.Counts
	for _, mm := range ms {
		day = day.Plus(mm.Counts)
		if mm.Start.Equal(last) {
			minute = minute.Plus(mm.Counts)
		}
	}
	successful := day.Requests - day.Errors5xx - day.Throttled
	availability := 100.0
	if day.Requests > 0 {
		availability = 100 * (1 - float64(day.Errors5xx)/float64(day.Requests))
	}
	var avg, errRate float64
	if minute.Requests > 0 {
		avg = float64(minute.DurationMs) / float64(minute.Requests)
		errRate = float64(minute.Errors5xx) / float64(minute.Requests) * 100
	}
	f.Total, f.Successful, f.Failed, f.Throttled = &day.Requests, &successful, &day.Errors5xx, &day.Throttled
	f.Availability = &availability
	f.Rate, f.SlowQueries = &minute.Requests, &minute.Slow
	f.AverageResponseTime, f.ErrorRate = &avg, &errRate

	snap, err := m.loadSnapshot(ctx, ms)
	if err != nil {
		// The counters were readable, so the store is up: an unreadable
		// load (e.g. the overrides) leaves only the load figures unknown.
		m.logger.WarnContext(ctx, "load snapshot failed; load figures are null", "err", err)
		return f, nil
	}
	cl, ac := snap.CurrentLoad, snap.ActiveConnections
	f.CurrentLoad, f.ActiveConnections = &cl, &ac
	if withPeak {
		peak, err := m.peaks.Observe(ctx, cl)
		if err != nil {
			return Figures{}, fmt.Errorf("peak load: %w", err)
		}
		f.PeakLoad = &peak
	}
	return f, nil
}

// Health is API.md's health score: from 100, cpu > 0.8 -30 else > 0.6 -15;
// memory > 0.8 -25 else > 0.6 -10; errorRate > 5 -20 else > 1 -10; load >
// 0.8 -15. A nil input takes no deduction.
func Health(cpu, memory, errorRate, load *float64) (score int, status string) {
	score = 100
	score -= deduct(cpu, 0.8, 30, 0.6, 15)
	score -= deduct(memory, 0.8, 25, 0.6, 10)
	score -= deduct(errorRate, 5, 20, 1, 10)
	score -= deduct(load, 0.8, 15, math.Inf(1), 0)
	switch {
	case score < 50:
		status = "critical"
	case score < 70:
		status = "warning"
	case score < 90:
		status = "degraded"
	default:
		status = "healthy"
	}
	return score, status
}

func deduct(v *float64, hi float64, hiCost int, lo float64, loCost int) int {
	switch {
	case v == nil:
		return 0
	case *v > hi:
		return hiCost
	case *v > lo:
		return loCost
	}
	return 0
}

// EvaluateAlerts is the scheduled evaluation: API.md's rules over the last
// complete minute. It also samples the current load as a peak candidate, so
// peakLoad sees every minute even when nobody reads the monitor.
func (m *Monitor) EvaluateAlerts(ctx context.Context) (time.Time, []alerts.Result, error) {
	now := m.clock.Now()
	cur := now.Truncate(time.Minute)
	window := cur.Add(-time.Minute)
	// The window and the current minute: the rules read the first, the load both.
	ms, err := m.counters.Minutes(ctx, window, cur.Add(time.Minute))
	if err != nil {
		return window, nil, fmt.Errorf("read minute counters: %w", err)
	}
	var c metrics.Counts
	for _, mm := range ms {
		if mm.Start.Equal(window) {
			c = c.Plus(mm.Counts)
		}
	}
	in := alerts.Inputs{Window: window, FailedLogins: &c.FailedLogins, Memory: m.memory()}
	if m.realtime {
		in.Requests, in.Failed, in.DurationMs = &c.Requests, &c.Errors5xx, &c.DurationMs
		if snap, err := m.loadSnapshot(ctx, ms); err != nil {
			m.logger.WarnContext(ctx, "load snapshot for peak failed", "err", err)
		} else if _, err := m.peaks.Observe(ctx, snap.CurrentLoad); err != nil {
			m.logger.WarnContext(ctx, "peak load update failed", "err", err)
		}
	}
	results, err := m.alerts.Evaluate(ctx, in)
	return window, results, err
}

func (m *Monitor) loadSnapshot(ctx context.Context, ms []metrics.Minute) (load.Snapshot, error) {
	return load.NewMeterFrom(minutesOf(ms), m.overrides, m.capacityRPM, m.clock).Snapshot(ctx)
}

// History returns hours×60 points, one per minute, ending with the last
// complete minute; minutes without traffic are zero points.
func (m *Monitor) History(ctx context.Context, hours int) ([]metrics.Minute, time.Time, error) {
	now := m.clock.Now()
	end := now.Truncate(time.Minute)
	n := hours * 60
	from := end.Add(-time.Duration(n) * time.Minute)
	if m.source == "cloudwatch" {
		// DynamoDB calls are bounded by DB_TIMEOUT in the client; CloudWatch here.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cloudWatchTimeout)
		defer cancel()
	}
	ms, err := m.history.Minutes(ctx, from, end)
	if err != nil {
		return nil, now, fmt.Errorf("read history (%s): %w", m.source, err)
	}
	return metrics.FillMinutes(from, n, ms), now, nil
}
