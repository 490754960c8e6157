// Package platform builds, once per instance, what the functions share: the
// AWS clients, the clock and random source, the logger, and the domain
// services with their parameters taken from the configuration. It is the one
// place that reads config.Config: every other package takes its own
// parameters. main packages and the local API server call New, then hand the
// Deps to a function's routes (<name>api.New).
package platform

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/ctxlog"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/identity"
	"github.com/zenithfresh/zenith-serverless/shared/keyring"
	"github.com/zenithfresh/zenith-serverless/shared/load"
	"github.com/zenithfresh/zenith-serverless/shared/lockout"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/monitor"
	"github.com/zenithfresh/zenith-serverless/shared/ratelimit"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// Deps is what a function's routes are built from: concrete services with
// their types (building one is cheap and does no I/O).
type Deps struct {
	Function string
	AWS      aws.Config
	DB       *dynamodb.Client
	Clock    clock.Clock
	Random   clock.Random
	Logger   *slog.Logger // carries the request ids of the context (ctxlog)

	// Keys is the deployment key (users table item meta#keys), read on
	// first use: client-key hashes, cursors and device cookies.
	Keys     *keyring.Keyring
	Roles    *users.Roles
	Users    *users.Store
	Sessions *sessions.Manager
	Identity *identity.Service
	Limiter  *ratelimit.Limiter
	Recorder *metrics.Recorder

	// Meter and Overrides measure the load (traffic-manager).
	Meter     *load.Meter
	Overrides *load.Overrides
	Shedding  load.Shedding
	// Monitor are the system monitor's parameters; monitorapi builds the
	// monitor with the history reader of its source.
	Monitor monitor.Settings
	// Master is the configured master user (MASTER_USERNAME and its password
	// or secret); the auth function checks it at start.
	Master users.Master

	http          httpSettings
	shutdownFlush bool // METRICS_SHUTDOWN_FLUSH
}

// httpSettings are the request layer's parameters, put on every app by Install.
type httpSettings struct {
	allowedOrigins  []string
	trustedProxies  []netip.Prefix
	rateLimitStatus int
}

// Option adjusts New; tests use it to control time, randomness and the client.
type Option func(*options)

type options struct {
	metricsOut     io.Writer
	metricsTimeout time.Duration
	events         identity.EventCounter
	clock          clock.Clock
	random         clock.Random
	logger         *slog.Logger
	dbOptions      []func(*dynamodb.Options)
}

// WithClock injects the clock that decides expiry, limits and minutes.
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

// WithRandom injects the random source that decides shedding.
func WithRandom(r clock.Random) Option { return func(o *options) { o.random = r } }

// WithMetricsOutput sends the EMF lines somewhere other than stdout (tests, benchmarks).
func WithMetricsOutput(w io.Writer) Option { return func(o *options) { o.metricsOut = w } }

// WithMetricsWriteTimeout replaces the bound of the recorder's counter write
// (tests on a loaded emulator widen it).
func WithMetricsWriteTimeout(d time.Duration) Option {
	return func(o *options) { o.metricsTimeout = d }
}

// WithEvents replaces the counter of security events (the recorder) given to
// the identity service.
func WithEvents(e identity.EventCounter) Option { return func(o *options) { o.events = e } }

// WithLogger replaces the Lambda logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithDynamoDBOptions adds client options, e.g. a store.CallCounter.
func WithDynamoDBOptions(fns ...func(*dynamodb.Options)) Option {
	return func(o *options) { o.dbOptions = append(o.dbOptions, fns...) }
}

// New builds the clients and services for cfg.
func New(ctx context.Context, cfg config.Config, opts ...Option) (*Deps, error) {
	o := options{clock: clock.System{}, random: clock.CryptoRandom{}, metricsOut: os.Stdout}
	for _, fn := range opts {
		fn(&o)
	}
	if o.logger == nil {
		o.logger = lambdacontext.NewLogger()
	}
	ac, err := store.LoadAWS(ctx, cfg.Region, cfg.DynamoDBEndpoint)
	if err != nil {
		return nil, err
	}
	logger := ctxlog.New(o.logger.With("function", cfg.Function))
	// The breaker is outermost, so a store outage costs a request about one DB_TIMEOUT.
	// UsageOption feeds each request's capacity accumulator (the EMF ReadUnits/WriteUnits).
	db := store.NewDynamoDB(ac, cfg.DynamoDBEndpoint, cfg.DBTimeout,
		append([]func(*dynamodb.Options){store.NewBreaker(store.BreakerCooldown, o.clock.Now).Option(), store.UsageOption()}, o.dbOptions...)...)
	d := &Deps{
		Function: cfg.Function,
		AWS:      ac,
		DB:       db,
		Clock:    o.clock,
		Random:   o.random,
		Logger:   logger,
		Master:   users.Master{Username: cfg.MasterUsername, Password: cfg.MasterPassword, Secret: cfg.MasterPasswordSecret},
		// The SIGTERM registration costs init time, so it is opt-in.
		shutdownFlush: cfg.MetricsShutdownFlush,
		http: httpSettings{
			allowedOrigins: cfg.AllowedOrigins, trustedProxies: cfg.TrustedProxies, rateLimitStatus: cfg.RateLimitStatus,
		},
	}
	d.Keys = keyring.New(db, cfg.Tables.Users, o.clock, nil)
	d.Roles = users.NewRoles(db, cfg.Tables.Users, o.clock)
	d.Users = users.NewWithRoles(db, cfg.Tables.Users, d.Roles, o.clock, logger)
	d.Users.UseCursorKeys(d.Keys)
	if cfg.MasterUsername != "" {
		d.Users.Protect(cfg.MasterUsername)
	}
	d.Sessions = sessions.New(db, SessionTables(cfg), SessionConfig(cfg), d.Roles, o.clock, logger)
	d.Sessions.UseCursorKeys(d.Keys)
	ls, err := LimiterSettings(cfg)
	if err != nil {
		return nil, err
	}
	ls.Keys = d.Keys
	if d.Limiter, err = ratelimit.New(db, ls, o.clock, logger); err != nil {
		return nil, err
	}
	rs := RecorderSettings(cfg)
	if o.metricsTimeout > 0 {
		rs.WriteTimeout = o.metricsTimeout
	}
	d.Recorder = metrics.NewRecorder(rs, db, o.clock, o.metricsOut, logger)
	events := o.events
	if events == nil {
		events = d.Recorder
	}
	d.Identity = identity.New(identity.Parts{
		DB: db, Users: d.Users, Sessions: d.Sessions,
		Guard:  lockout.New(db, cfg.Tables.LoginAttempts, o.clock, lockout.DefaultPolicy, d.Keys),
		Events: events, Keys: d.Keys, Clock: o.clock, Logger: logger,
	})
	d.Overrides = load.NewOverrides(db, cfg.Tables.LoadOverrides, cfg.LoadOverrideTTL, o.clock)
	d.Meter = load.NewMeter(metrics.NewCounters(db, cfg.Tables.Metrics, cfg.MetricShards, o.clock), d.Overrides, cfg.TrafficCapacityRPM, o.clock)
	d.Shedding = load.Shedding{Threshold: cfg.ShedThreshold, AdmitRatio: cfg.ShedAdmitRatio, SimulationEnabled: cfg.LoadSimulationEnabled}
	d.Monitor = monitor.Settings{
		Realtime: cfg.MetricsRealtime, Source: cfg.MetricsHistorySource, CapacityRPM: cfg.TrafficCapacityRPM,
		MemoryLimitMB: cfg.MemoryLimitMB, Shards: cfg.MetricShards, MetricsTable: cfg.Tables.Metrics,
		AlertsTable: cfg.Tables.Alerts, OverrideTable: cfg.Tables.LoadOverrides, OverrideTTL: cfg.LoadOverrideTTL,
	}
	return d, nil
}

// StartOptions are the Lambda runtime options of every function: with
// METRICS_SHUTDOWN_FLUSH the runtime registers for SIGTERM (an internal
// extension, about 2 ms more init: BENCHMARKS.md) and Shutdown writes the
// pending counts before the instance is reclaimed.
func (d *Deps) StartOptions() []lambda.Option {
	if !d.shutdownFlush {
		return nil
	}
	return []lambda.Option{lambda.WithEnableSIGTERM(d.Shutdown)}
}

// ShutdownFlushTimeout bounds the recorder's final flush on SIGTERM: Lambda
// sends SIGKILL about 500 ms after SIGTERM.
const ShutdownFlushTimeout = 400 * time.Millisecond

// Shutdown writes the recorder's pending counts, bounded by
// ShutdownFlushTimeout: on SIGTERM with METRICS_SHUTDOWN_FLUSH (see
// StartOptions), and when the local API server stops. A failure is logged by
// the recorder.
func (d *Deps) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownFlushTimeout)
	defer cancel()
	_ = d.Recorder.Flush(ctx)
}

// Install puts the shared middleware and the request layer's settings on a
// function's app.
func (d *Deps) Install(app *httpapi.App) *httpapi.App {
	app.Function = d.Function
	app.Sessions = d.Sessions
	app.Limiter = d.Limiter
	app.Recorder = d.Recorder
	app.Clock = d.Clock
	app.AllowedOrigins = d.http.allowedOrigins
	app.TrustedProxies = d.http.trustedProxies
	app.RateLimitStatus = d.http.rateLimitStatus
	app.Logger = d.Logger
	return app
}

// SessionTables names the tables the session manager reads.
func SessionTables(cfg config.Config) sessions.Tables {
	return sessions.Tables{Sessions: cfg.Tables.Sessions, Users: cfg.Tables.Users}
}

// SessionConfig is SESSION_TTL, SESSION_MAX_LIFETIME and SESSION_TOUCH_INTERVAL.
func SessionConfig(cfg config.Config) sessions.Config {
	return sessions.Config{IdleTTL: cfg.SessionTTL, MaxLifetime: cfg.SessionMaxLifetime, TouchInterval: cfg.SessionTouchInterval}
}

// LimiterSettings are the rate limiter's parameters: RATE_LIMITS_TABLE, the
// frontdoor and api policies, RATE_LIMIT_FAIL_MODE and RATE_LIMIT_SHADOW.
func LimiterSettings(cfg config.Config) (ratelimit.Settings, error) {
	fd, err := ratelimit.NewPolicy(ratelimit.PolicyFrontdoor, cfg.RateLimitRPM, cfg.RateLimitBurst, cfg.RateLimitWindow)
	if err != nil {
		return ratelimit.Settings{}, err
	}
	api, err := ratelimit.NewPolicy(ratelimit.PolicyAPI, cfg.RateLimitAPIRPM, cfg.RateLimitAPIBurst, cfg.RateLimitWindow)
	if err != nil {
		return ratelimit.Settings{}, err
	}
	return ratelimit.Settings{
		Table: cfg.Tables.RateLimits, Policies: []ratelimit.Policy{fd, api},
		FailOpen: cfg.RateLimitFailMode != "closed", Shadow: cfg.RateLimitShadow,
	}, nil
}

// RecorderSettings are the recorder's parameters; its counter write is
// bounded by min(DB_TIMEOUT, metrics.MaxRecordTimeout), so a slow metrics
// table cannot make every answer slow, and METRICS_FLUSH_INTERVAL sets how
// often an instance writes its counters.
func RecorderSettings(cfg config.Config) metrics.Settings {
	return metrics.Settings{
		Function: cfg.Function, Table: cfg.Tables.Metrics, Shards: cfg.MetricShards,
		Realtime: cfg.MetricsRealtime, SlowQuery: cfg.SlowQuery, WriteTimeout: min(cfg.DBTimeout, metrics.MaxRecordTimeout),
		FlushInterval: cfg.MetricsFlushInterval,
	}
}
