package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
)

// EventFailedLogin is the security event the identity code counts on every
// failed login; it feeds the failed-logins alert rule.
const EventFailedLogin = "failed_login"

// MaxRecordTimeout bounds the one counter write a request adds, below
// DB_TIMEOUT: a slow metrics table must not make every answer slow.
const MaxRecordTimeout = time.Second

// Recorder measures every finished request (httpapi.Recorder) and counts
// security events (platform.EventCounter). Per request it writes one EMF line
// to out and, unless METRICS_REALTIME=off, adds to the minute counters with
// one atomic UpdateItem. It never fails a request: errors are logged.
type Recorder struct {
	function string
	counters *Counters // nil: METRICS_REALTIME=off
	events   *Counters // security events are always counted (rare, and a rule needs them)
	slow     time.Duration
	timeout  time.Duration
	clock    clock.Clock
	logger   *slog.Logger

	mu  sync.Mutex // one Write per line, so concurrent lines never interleave
	out io.Writer
}

// RecorderOption adjusts NewRecorder.
type RecorderOption func(*Recorder)

// WithWriteTimeout replaces the bound of the counter write (default
// min(DB_TIMEOUT, MaxRecordTimeout)); tests on a loaded emulator widen it.
func WithWriteTimeout(d time.Duration) RecorderOption {
	return func(r *Recorder) { r.timeout = d }
}

// NewRecorder builds the recorder of a function from its configuration; out
// receives the EMF lines (os.Stdout in Lambda, a buffer in tests).
func NewRecorder(cfg config.Config, db CounterAPI, c clock.Clock, out io.Writer, logger *slog.Logger, opts ...RecorderOption) *Recorder {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if out == nil {
		out = io.Discard
	}
	counters := NewCounters(db, cfg.Tables.Metrics, cfg.MetricShards, c)
	r := &Recorder{
		function: cfg.Function,
		events:   counters,
		slow:     cfg.SlowQuery,
		timeout:  min(cfg.DBTimeout, MaxRecordTimeout),
		clock:    c,
		logger:   logger,
		out:      out,
	}
	if cfg.MetricsRealtime {
		r.counters = counters
	}
	for _, fn := range opts {
		fn(r)
	}
	return r
}

// Counters returns the minute counters the recorder writes (nil when
// METRICS_REALTIME=off).
func (r *Recorder) Counters() *Counters { return r.counters }

// Classify sorts a finished request by its status and error code. A request
// is throttled when it was answered 429 or with the code RATE_LIMIT, whatever
// the status: with RATE_LIMIT_STATUS=503 a limiter denial is a 503 RATE_LIMIT,
// the opt-in spelling of the same throttle (API.md: "429s count as
// throttled"). It is failed when its status is >= 500 and it is not throttled,
// so a denial never lowers availability or feeds the error-rate rules. The two
// are exclusive.
func Classify(status int, code string) (failed, throttled bool) {
	throttled = status == http.StatusTooManyRequests || code == httpapi.CodeRateLimit
	failed = status >= 500 && !throttled
	return failed, throttled
}

// Delta is what one observation adds to the minute counters.
func Delta(o httpapi.Observation, slow time.Duration) Counts {
	failed, throttled := Classify(o.Status, o.Code)
	return Counts{
		Requests:   1,
		Admitted:   int64(boolInt(o.Admitted)),
		Errors5xx:  int64(boolInt(failed)),
		Throttled:  int64(boolInt(throttled)),
		Slow:       int64(boolInt(o.Duration > slow)),
		DurationMs: max(o.Duration.Milliseconds(), 0),
	}
}

// Record implements httpapi.Recorder.
func (r *Recorder) Record(ctx context.Context, o httpapi.Observation) {
	function := o.Function
	if function == "" {
		function = r.function
	}
	r.write(RequestLine(o.At, function, RouteDimension(o.Method, o.Route), o.Method, o.Status, o.Code, o.Duration))
	if r.counters == nil {
		return
	}
	r.add(ctx, r.counters, o.At, Delta(o, r.slow))
}

// CountEvent implements platform.EventCounter: one EMF line and, for failed
// logins, one counter add (whatever METRICS_REALTIME says, so the critical
// failed-logins rule keeps its input).
func (r *Recorder) CountEvent(ctx context.Context, name string) {
	now := r.clock.Now()
	r.write(EventLine(now, r.function, name))
	if name == EventFailedLogin {
		r.add(ctx, r.events, now, Counts{FailedLogins: 1})
	}
}

func (r *Recorder) add(ctx context.Context, c *Counters, at time.Time, delta Counts) {
	// The request's own cancellation must not lose the count, but the write
	// is bounded on its own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	if err := c.Add(ctx, at, delta); err != nil {
		r.logger.WarnContext(ctx, "metrics counter write failed", "err", err)
	}
}

func (r *Recorder) write(line []byte) {
	if len(line) == 0 {
		return
	}
	buf := make([]byte, 0, len(line)+1)
	buf = append(append(buf, line...), '\n')
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.out.Write(buf); err != nil {
		r.logger.Warn("metrics line write failed", "err", err)
	}
}
