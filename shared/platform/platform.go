// Package platform builds, once per instance, what every function shares: the
// AWS clients, the clock and random source, and the request middleware
// (session resolver, rate limiter, metrics recorder). main packages and the
// local API server call New, then hand the Deps to a function's routes.
package platform

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/ratelimit"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// EventCounter counts security events (failed logins) into the per-minute
// counters the alert rules read.
type EventCounter interface {
	CountEvent(ctx context.Context, name string)
}

// Deps is what a function's routes are built from.
type Deps struct {
	Config config.Config
	AWS    aws.Config
	DB     *dynamodb.Client
	Clock  clock.Clock
	Random clock.Random
	Logger *slog.Logger

	Sessions httpapi.SessionResolver
	Limiter  httpapi.Limiter
	Recorder httpapi.Recorder
	Events   EventCounter
}

// Option adjusts New; tests use it to control time, randomness and the client.
type Option func(*options)

type options struct {
	metricsOut io.Writer
	clock      clock.Clock
	random     clock.Random
	logger     *slog.Logger
	dbOptions  []func(*dynamodb.Options)
}

// WithClock injects the clock that decides expiry, limits and minutes.
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

// WithRandom injects the random source that decides shedding.
func WithRandom(r clock.Random) Option { return func(o *options) { o.random = r } }

// WithMetricsOutput sends the EMF lines somewhere other than stdout (tests, benchmarks).
func WithMetricsOutput(w io.Writer) Option { return func(o *options) { o.metricsOut = w } }

// WithLogger replaces the Lambda logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithDynamoDBOptions adds client options, e.g. a store.CallCounter.
func WithDynamoDBOptions(fns ...func(*dynamodb.Options)) Option {
	return func(o *options) { o.dbOptions = append(o.dbOptions, fns...) }
}

// New builds the clients and middleware for cfg.
func New(ctx context.Context, cfg config.Config, opts ...Option) (*Deps, error) {
	o := options{clock: clock.System{}, random: clock.CryptoRandom{}, metricsOut: os.Stdout}
	for _, fn := range opts {
		fn(&o)
	}
	if o.logger == nil {
		o.logger = lambdacontext.NewLogger()
	}
	ac, err := store.LoadAWS(ctx, cfg)
	if err != nil {
		return nil, err
	}
	d := &Deps{
		Config: cfg,
		AWS:    ac,
		// The breaker is outermost, so a store outage costs a request about one DB_TIMEOUT.
		DB:     store.NewDynamoDB(ac, cfg, append([]func(*dynamodb.Options){store.NewBreaker(store.BreakerCooldown, o.clock.Now).Option()}, o.dbOptions...)...),
		Clock:  o.clock,
		Random: o.random,
		Logger: o.logger.With("function", cfg.Function),
		Events: noEvents{},
	}
	// The shared middleware; each piece lives in its own package.
	// SESSIONS: identity wires d.Sessions here.
	d.Sessions = sessions.New(d.DB, cfg, d.Clock, d.Logger)
	// LIMITER: rate limiting wires d.Limiter here.
	if d.Limiter, err = ratelimit.New(d.DB, cfg, d.Clock, d.Logger); err != nil {
		return nil, err
	}
	// RECORDER: metrics wires d.Recorder and d.Events here.
	rec := metrics.NewRecorder(cfg, d.DB, d.Clock, o.metricsOut, d.Logger)
	d.Recorder, d.Events = rec, rec
	return d, nil
}

// Install puts the shared middleware on a function's app.
func (d *Deps) Install(app *httpapi.App) *httpapi.App {
	app.Function = d.Config.Function
	app.Sessions = d.Sessions
	app.Limiter = d.Limiter
	app.Recorder = d.Recorder
	app.Clock = d.Clock
	app.AllowedOrigins = d.Config.AllowedOrigins
	app.Logger = d.Logger
	return app
}

type noEvents struct{}

func (noEvents) CountEvent(context.Context, string) {}
