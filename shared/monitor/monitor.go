// Package monitor computes the system monitor's figures (API.md
// "/api/system-monitor") from the minute counters of all functions and
// instances, the load, the peaks and the alerts, and runs the scheduled alert
// evaluation. The HTTP shapes are monitorapi's.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
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

// overridesOf serves overrides the monitor has already read to the load meter.
type overridesOf load.OverrideTotals

func (o overridesOf) Current(context.Context) (load.OverrideTotals, error) {
	return load.OverrideTotals(o), nil
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
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
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
	// series reads the minute counters through the hourly roll-ups, with
	// this instance's cache of what is complete.
	series *metrics.Series
	// The load (API.md's currentLoad, activeConnections) is shared/load's
	// meter over the counters read here plus the unexpired overrides.
	overrides   load.OverrideReader
	capacityRPM int
	peaks       *metrics.Peaks
	reported    *metrics.Reported
	alerts      *alerts.Store
	history     MinuteReader // the CloudWatch reader; nil: the series
	source      string       // "dynamodb" or "cloudwatch"
	memory      func() *float64
	readiness   *Readiness
	logger      *slog.Logger
}

// New builds the monitor. history serves the history endpoint (nil: the
// DynamoDB minute counters and their roll-ups, as
// METRICS_HISTORY_SOURCE=dynamodb); memory is the instance's memory gauge
// (nil: metrics.MemoryUsage of the configured size).
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
		series:      metrics.NewSeries(counters, metrics.NewRollups(db, s.MetricsTable, clk), clk, logger),
		overrides:   load.NewOverrides(db, s.OverrideTable, s.OverrideTTL, clk),
		capacityRPM: s.CapacityRPM,
		peaks:       metrics.NewPeaks(db, s.MetricsTable, clk),
		reported:    metrics.NewReported(db, s.MetricsTable, clk),
		alerts:      alerts.NewStore(db, s.AlertsTable, clk),
		history:     history,
		source:      s.Source,
		memory:      memory,
		readiness:   NewReadiness(db, s.MetricsTable, clk),
		logger:      logger,
	}, nil
}

// Series is the minute-counter reader behind the figures and the history
// (tests and benchmarks drive its roll-ups directly).
func (m *Monitor) Series() *metrics.Series { return m.series }

// Ready reports whether DynamoDB answers (GET /api/health), from this
// instance's cache of at most ReadinessCacheFor.
func (m *Monitor) Ready(ctx context.Context) bool { return m.readiness.Ready(ctx) }

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
// load as a peak candidate, for the endpoints that show it.
func (m *Monitor) Figures(ctx context.Context, withPeak bool) (Figures, error) {
	f, _, err := m.Snapshot(ctx, Want{Peak: withPeak})
	return f, err
}

// Want says what a Snapshot reads besides the figures.
type Want struct {
	Peak   bool // peakLoad (metrics, overview)
	Alerts bool // the alert list (overview, health)
}

// Snapshot measures the current figures and reads what w asks for, issuing
// the independent reads together: the minute counters (roll-ups of the
// settled hours this instance lacks, and the minutes it has not cached), the
// load overrides, the stored peaks and the alerts: one round trip, cold or
// warm. A second one happens only when the current load is a new peak for
// the hour (its conditional update) or a roll-up is missing.
func (m *Monitor) Snapshot(ctx context.Context, w Want) (Figures, []alerts.Alert, error) {
	now := m.clock.Now()
	f := Figures{Now: now, Memory: m.memory()}
	if !m.realtime {
		// METRICS_REALTIME=off: the counters are not written, so the
		// request figures and the load are unknown here (CloudWatch has them).
		var list []alerts.Alert
		if w.Alerts {
			var err error
			if list, err = m.alerts.List(ctx); err != nil {
				return Figures{}, nil, err
			}
		}
		return f, list, nil
	}
	cur := now.Truncate(time.Minute)
	last := cur.Add(-time.Minute)
	var (
		ms                         []metrics.Minute
		ov                         load.OverrideTotals
		peak                       metrics.PeakReading
		list                       []alerts.Alert
		msErr, ovErr, pkErr, lsErr error
		wg                         sync.WaitGroup
	)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A failure of the counters or the alerts fails the answer, so it
	// cancels the other reads; the overrides and peaks only null the load.
	wg.Go(func() {
		if ms, msErr = m.series.Read(rctx, cur.Add(-totalsWindow+time.Minute), cur.Add(time.Minute), last); msErr != nil {
			cancel()
		}
	})
	wg.Go(func() { ov, ovErr = m.overrides.Current(rctx) })
	if w.Peak {
		wg.Go(func() { peak, pkErr = m.peaks.Read(rctx) })
	}
	if w.Alerts {
		wg.Go(func() {
			if list, lsErr = m.alerts.List(rctx); lsErr != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	if msErr != nil && (lsErr == nil || !errors.Is(msErr, context.Canceled)) {
		return Figures{}, nil, fmt.Errorf("read minute counters: %w", msErr)
	}
	if lsErr != nil {
		return Figures{}, nil, lsErr
	}
	var day, minute metrics.Counts
	for _, mm := range ms {
		day = day.Plus(mm.Counts)
		if mm.Start.Equal(last) {
			minute = mm.Counts
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

	if ovErr != nil {
		// The counters were readable, so the store is up: an unreadable
		// load (e.g. the overrides) leaves only the load figures unknown.
		m.logger.WarnContext(ctx, "load snapshot failed; load figures are null", "err", ovErr)
		return f, list, nil
	}
	snap, err := m.loadSnapshot(ctx, ms, ov)
	if err != nil {
		m.logger.WarnContext(ctx, "load snapshot failed; load figures are null", "err", err)
		return f, list, nil
	}
	cl, ac := snap.CurrentLoad, snap.ActiveConnections
	f.CurrentLoad, f.ActiveConnections = &cl, &ac
	if w.Peak {
		if pkErr != nil {
			return Figures{}, nil, fmt.Errorf("peak load: %w", pkErr)
		}
		if cl > peak.Hour {
			// A new peak for the hour: the only write of a read.
			if err := m.peaks.Offer(ctx, cl); err != nil {
				return Figures{}, nil, fmt.Errorf("peak load: %w", err)
			}
		}
		p := math.Max(cl, peak.Max)
		f.PeakLoad = &p
	}
	return f, list, nil
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
// peakLoad sees every minute even when nobody reads the monitor, and writes
// the hourly roll-ups of the settled hours that lack one (RollUp). The reads
// (minute counters, overrides, peaks, rule states) are issued together; the
// roll-ups run beside the evaluation, and their failure is only logged (the
// next evaluation catches up; readers fall back to the minute counters).
func (m *Monitor) EvaluateAlerts(ctx context.Context) (time.Time, []alerts.Result, error) {
	now := m.clock.Now()
	cur := now.Truncate(time.Minute)
	window := cur.Add(-time.Minute)
	var (
		ms                         []metrics.Minute
		ov                         load.OverrideTotals
		peak                       metrics.PeakReading
		states                     alerts.RuleStates
		msErr, ovErr, pkErr, stErr error
		reads, rollups             sync.WaitGroup
	)
	if m.realtime {
		rollups.Go(func() {
			if res, err := m.RollUp(ctx); err != nil {
				m.logger.WarnContext(ctx, "hourly roll-up failed", "err", err, "written", res.Written, "missing", res.Missing)
			}
		})
		reads.Go(func() { ov, ovErr = m.overrides.Current(ctx) })
		reads.Go(func() { peak, pkErr = m.peaks.Read(ctx) })
	}
	defer rollups.Wait()
	// The window and the current minute: the rules read the first, the load both.
	reads.Go(func() { ms, msErr = m.series.Read(ctx, window, cur.Add(time.Minute), window) })
	reads.Go(func() { states, stErr = m.alerts.States(ctx) })
	reads.Wait()
	if msErr != nil {
		return window, nil, fmt.Errorf("read minute counters: %w", msErr)
	}
	if stErr != nil {
		return window, nil, stErr
	}
	var c metrics.Counts
	for _, mm := range ms {
		if mm.Start.Equal(window) {
			c = c.Plus(mm.Counts)
		}
	}
	in := alerts.Inputs{Window: window, FailedLogins: &c.FailedLogins, Memory: m.memory()}
	var offer sync.WaitGroup
	if m.realtime {
		in.Requests, in.Failed, in.DurationMs = &c.Requests, &c.Errors5xx, &c.DurationMs
		snap, err := m.loadSnapshot(ctx, ms, ov)
		switch {
		case ovErr != nil || err != nil:
			m.logger.WarnContext(ctx, "load snapshot for peak failed", "err", errors.Join(ovErr, err))
		case pkErr != nil:
			m.logger.WarnContext(ctx, "peak load read failed", "err", pkErr)
		case snap.CurrentLoad > peak.Hour:
			offer.Go(func() {
				if err := m.peaks.Offer(ctx, snap.CurrentLoad); err != nil {
					m.logger.WarnContext(ctx, "peak load update failed", "err", err)
				}
			})
		}
	}
	results, err := m.alerts.EvaluateFrom(ctx, in, states)
	offer.Wait()
	return window, results, err
}

// RollUp writes the missing hourly roll-ups of the look-back (at most
// metrics.RollupBatch per call, newest first); EvaluateAlerts calls it.
func (m *Monitor) RollUp(ctx context.Context) (metrics.RollUpResult, error) {
	return m.series.RollUp(ctx, metrics.RollupLookback, metrics.RollupBatch)
}

func (m *Monitor) loadSnapshot(ctx context.Context, ms []metrics.Minute, ov load.OverrideTotals) (load.Snapshot, error) {
	return load.NewMeterFrom(minutesOf(ms), overridesOf(ov), m.capacityRPM, m.clock).Snapshot(ctx)
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
	if m.history == nil {
		// The roll-ups of the settled hours and the minutes of the others.
		ms, err := m.series.Read(ctx, from, end, end)
		if err != nil {
			return nil, now, fmt.Errorf("read history (%s): %w", m.source, err)
		}
		return ms, now, nil
	}
	ms, err := m.history.Minutes(ctx, from, end)
	if err != nil {
		return nil, now, fmt.Errorf("read history (%s): %w", m.source, err)
	}
	return metrics.FillMinutes(from, n, ms), now, nil
}
