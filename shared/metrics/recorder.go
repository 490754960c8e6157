package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// EventFailedLogin is the security event the identity code counts on every
// failed login; it feeds the failed-logins alert rule.
const EventFailedLogin = "failed_login"

// MaxRecordTimeout bounds each counter write (a flush, or a request's own), below
// DB_TIMEOUT: a slow metrics table must not make every answer slow.
const MaxRecordTimeout = time.Second

// Observation is one finished request, as the request layer saw it.
type Observation struct {
	Function string
	Route    string // route pattern, "unmatched" for 404s
	Method   string
	Status   int
	// Code is the answer's error code ("" on success), a plain property of
	// the EMF line.
	Code string
	// Throttled is true when the request was refused by a rate limit,
	// whatever its status (429, or 503 under RATE_LIMIT_STATUS=503).
	Throttled bool
	// Admitted is true when the request spent quota under a limiter policy and
	// was let through: the traffic a client's quota bounds, which the load
	// signal counts. Free probes (status=true) and denials are not admitted.
	Admitted bool
	Duration time.Duration
	At       time.Time
	// ReadUnits and WriteUnits are the DynamoDB capacity units the request's
	// own calls consumed (store.Usage); the recorder's writes are not in them.
	ReadUnits, WriteUnits float64
}

// Settings are the recorder's parameters.
type Settings struct {
	Function  string        // the metric dimension: "auth", "session", ...
	Table     string        // METRICS_TABLE
	Shards    int           // METRIC_SHARDS
	Realtime  bool          // METRICS_REALTIME=dynamodb: also write the minute counters
	SlowQuery time.Duration // SLOW_QUERY_MS
	// WriteTimeout bounds the counter write (min(DB_TIMEOUT, MaxRecordTimeout)).
	WriteTimeout time.Duration
	// FlushInterval is METRICS_FLUSH_INTERVAL: an instance writes its
	// pending counts at most once per interval (see Start). 0 writes each
	// request's counts in Record, synchronously.
	FlushInterval time.Duration
}

// Recorder measures every finished request (Record) and counts security
// events (CountEvent). Per request it writes one EMF line to out and, unless
// METRICS_REALTIME=off, adds the request to the minute counters: with a flush
// interval, to this instance's pending counts, which Start writes at most once
// per interval with one atomic UpdateItem per minute; without, with one
// UpdateItem in Record. It never fails a request: errors are logged.
type Recorder struct {
	function string
	counters *Counters // nil: METRICS_REALTIME=off
	events   *Counters // security events are always counted (rare, and a rule needs them)
	slow     time.Duration
	timeout  time.Duration
	clock    clock.Clock
	logger   *slog.Logger

	interval time.Duration
	pending  *pending // nil: no counters, or FlushInterval 0

	mu  sync.Mutex // one Write per line, so concurrent lines never interleave
	out io.Writer
}

// NewRecorder builds a function's recorder; out receives the EMF lines
// (os.Stdout in Lambda, a buffer in tests).
func NewRecorder(s Settings, db CounterAPI, c clock.Clock, out io.Writer, logger *slog.Logger) *Recorder {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if out == nil {
		out = io.Discard
	}
	timeout := s.WriteTimeout
	if timeout <= 0 {
		timeout = MaxRecordTimeout
	}
	counters := NewCounters(db, s.Table, s.Shards, c)
	r := &Recorder{
		function: s.Function,
		events:   counters,
		slow:     s.SlowQuery,
		timeout:  timeout,
		clock:    c,
		logger:   logger,
		out:      out,
	}
	if s.Realtime {
		r.counters = counters
		if s.FlushInterval > 0 {
			r.interval = s.FlushInterval
			r.pending = newPending()
		}
	}
	return r
}

// Counters returns the minute counters the recorder writes (nil when
// METRICS_REALTIME=off).
func (r *Recorder) Counters() *Counters { return r.counters }

// Classify sorts a finished request: throttled when refused by a rate limit
// (the request layer says so: a 429, or a 503 RATE_LIMIT under
// RATE_LIMIT_STATUS=503, the opt-in spelling of the same throttle); failed
// when its status is >= 500 and it is not throttled, so a denial never lowers
// availability or feeds the error-rate rules. The two are exclusive.
func Classify(status int, throttled bool) (failed, isThrottled bool) {
	throttled = throttled || status == http.StatusTooManyRequests
	return status >= 500 && !throttled, throttled
}

// Delta is what one observation adds to the minute counters.
func Delta(o Observation, slow time.Duration) Counts {
	failed, throttled := Classify(o.Status, o.Throttled)
	return Counts{
		Requests:   1,
		Admitted:   int64(boolInt(o.Admitted)),
		Errors5xx:  int64(boolInt(failed)),
		Throttled:  int64(boolInt(throttled)),
		Slow:       int64(boolInt(o.Duration > slow)),
		DurationMs: max(o.Duration.Milliseconds(), 0),
	}
}

// Record records one finished request.
func (r *Recorder) Record(ctx context.Context, o Observation) {
	if o.Function == "" {
		o.Function = r.function
	}
	r.write(RequestLine(o))
	switch {
	case r.counters == nil:
	case r.pending != nil:
		r.pending.add(o.At, Delta(o, r.slow))
	default:
		r.add(ctx, r.counters, o.At, Delta(o, r.slow))
	}
}

// CountEvent counts a security event: one EMF line and, for failed
// logins, one counter add (whatever METRICS_REALTIME says, so the critical
// failed-logins rule keeps its input). The add is written at once, not
// aggregated: failed logins are rare, and the rule must see them promptly.
func (r *Recorder) CountEvent(ctx context.Context, name string) {
	now := r.clock.Now()
	r.write(EventLine(now, r.function, name))
	if name == EventFailedLogin {
		r.add(ctx, r.events, now, Counts{FailedLogins: 1})
	}
}

func (r *Recorder) add(ctx context.Context, c *Counters, at time.Time, delta Counts) {
	ctx, cancel := r.detach(ctx)
	defer cancel()
	if err := c.Add(ctx, at, delta); err != nil {
		r.logger.WarnContext(ctx, "metrics counter write failed", "err", err)
	}
}

// detach returns the context of a counter write: the request's own
// cancellation must not lose counts, the write is bounded on its own, its
// capacity is not the request's (store.WithoutUsage), and its failure never
// opens the store breaker that the requests' own calls answer by
// (store.WithoutTrip).
func (r *Recorder) detach(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(store.WithoutTrip(store.WithoutUsage(context.WithoutCancel(ctx))), r.timeout)
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
