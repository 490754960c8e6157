package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
)

// EventFailedLogin is the security event the identity code counts on every
// failed login; it feeds the failed-logins alert rule.
const EventFailedLogin = "failed_login"

// MaxRecordTimeout bounds the one counter write a request adds, below
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
}

// Recorder measures every finished request (Record) and counts security
// events (CountEvent). Per request it writes one EMF line
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

// Start is called as a request begins; it returns what to call before the
// request is answered. Every request writes its own counts in Record, so
// there is nothing to start.
func (r *Recorder) Start(context.Context) (wait func()) { return func() {} }

// Record records one finished request.
func (r *Recorder) Record(ctx context.Context, o Observation) {
	if o.Function == "" {
		o.Function = r.function
	}
	r.write(RequestLine(o))
	if r.counters == nil {
		return
	}
	r.add(ctx, r.counters, o.At, Delta(o, r.slow))
}

// CountEvent counts a security event: one EMF line and, for failed
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
