// Command localapi is `make dev`: the whole API on 127.0.0.1 without AWS.
//
// It starts DynamoDB Local (unless DYNAMODB_ENDPOINT is set), creates the
// tables of template.yaml, builds the four functions' real handlers in-process
// (config.Load, platform.New, <function>api.New, as each main does), reads the
// routes from template.yaml and serves them the way API Gateway's HTTP API
// does: route priority, the base64 body rule, payload format 2.0 events, and
// cookies and headers back out. The system-monitor schedule runs too, and
// GET /openapi.yaml serves the API's OpenAPI document for client developers.
// Ctrl-C (or SIGTERM) stops the server and the schedule, writes each
// function's pending metrics counts, and stops DynamoDB Local.
//
// Environment: PORT (default 3000), DYNAMODB_ENDPOINT (use a running DynamoDB
// Local), every variable of the configuration table, and for the master user
// MASTER_USERNAME (default "admin" here) and MASTER_PASSWORD (default: a random
// one, printed once). Two options for load and fault tests, not for a
// deployed function: LOCALAPI_INSTANCES (default 1) builds that many
// instances of each function, each with its own clients, caches and store
// breaker as separate Lambda instances have, and spreads the requests over
// them round-robin; LOCALAPI_DEBUG_ADDR (e.g. 127.0.0.1:6060) serves expvar
// (/debug/vars: memstats, the goroutine count and the live heap) on that address.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/events"

	zenith "github.com/zenithfresh/zenith-serverless"
	"github.com/zenithfresh/zenith-serverless/shared/authapi"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/localdb"
	"github.com/zenithfresh/zenith-serverless/shared/monitorapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/samtemplate"
	"github.com/zenithfresh/zenith-serverless/shared/sessionapi"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/tables"
	"github.com/zenithfresh/zenith-serverless/shared/trafficapi"
)

// The template's routes and CORS settings (shared/samtemplate), under the
// names the gateway uses.
type (
	RouteSpec = samtemplate.Route
	CORS      = samtemplate.CORS
)

// DefaultRoute is the catch-all route key of an HTTP API.
const DefaultRoute = samtemplate.DefaultRoute

// Invoker is a function's raw Lambda handler, for scheduled events.
type Invoker func(ctx context.Context, payload json.RawMessage) (any, error)

// function is how the local server builds one function of the template, as its main does.
type function struct {
	name  string // config.Load's function name and the metric dimension
	build func(ctx context.Context, d *platform.Deps) (Handler, Invoker, error)
}

// functions maps the template's logical IDs to the functions' code.
var functions = map[string]function{
	"AuthFunction": {"auth", func(ctx context.Context, d *platform.Deps) (Handler, Invoker, error) {
		app, err := authapi.New(ctx, d)
		if err != nil {
			return nil, nil, err
		}
		return app.Handle, nil, nil
	}},
	"SessionFunction": {"session", func(ctx context.Context, d *platform.Deps) (Handler, Invoker, error) {
		app, err := sessionapi.New(ctx, d)
		if err != nil {
			return nil, nil, err
		}
		return app.Handle, nil, nil
	}},
	"TrafficManagerFunction": {"traffic-manager", func(ctx context.Context, d *platform.Deps) (Handler, Invoker, error) {
		app, err := trafficapi.New(ctx, d)
		if err != nil {
			return nil, nil, err
		}
		return app.Handle, nil, nil
	}},
	"SystemMonitorFunction": {"system-monitor", func(ctx context.Context, d *platform.Deps) (Handler, Invoker, error) {
		h, err := monitorapi.NewHandler(ctx, d)
		if err != nil {
			return nil, nil, err
		}
		return h.App().Handle, h.Invoke, nil
	}},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "localapi: %v\n", err)
		stop()
		os.Exit(1)
	}
}

// env is the process environment with the dev defaults laid over it.
type env struct {
	base func(string) string
	set  map[string]string
}

func (e env) get(k string) string {
	if v, ok := e.set[k]; ok {
		return v
	}
	return e.base(k)
}

func (e env) with(k, v string) env {
	set := make(map[string]string, len(e.set)+1)
	for key, val := range e.set {
		set[key] = val
	}
	set[k] = v
	return env{base: e.base, set: set}
}

// MaxInstances bounds LOCALAPI_INSTANCES.
const MaxInstances = 64

// roundRobin spreads requests (and scheduled events) over a function's instances.
type roundRobin struct {
	handlers []Handler
	invokers []Invoker
	next     atomic.Uint64
}

func (r *roundRobin) pick() int { return int((r.next.Add(1) - 1) % uint64(len(r.handlers))) }

func (r *roundRobin) Handle(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	return r.handlers[r.pick()](ctx, ev)
}

func (r *roundRobin) Invoke(ctx context.Context, payload json.RawMessage) (any, error) {
	return r.invokers[r.pick()](ctx, payload)
}

// The debug figures are published once per process (expvar panics on a
// second Publish): the goroutine count and the live heap as of the last GC,
// which, unlike RSS, falls back once garbage is collected.
var publishGoroutines = sync.OnceFunc(func() {
	expvar.Publish("goroutines", expvar.Func(func() any { return runtime.NumGoroutine() }))
	expvar.Publish("heapLiveBytes", expvar.Func(func() any {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[0].Value.Uint64()
	}))
})

func run(ctx context.Context, getenv func(string) string, out io.Writer) error {
	e := env{base: getenv, set: map[string]string{}}
	port := 3000
	if p := strings.TrimSpace(e.get("PORT")); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("PORT must be a port number, got %q", p)
		}
		port = n
	}
	perFunction := 1
	if v := strings.TrimSpace(e.get("LOCALAPI_INSTANCES")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxInstances {
			return fmt.Errorf("LOCALAPI_INSTANCES must be an integer from 1 to %d, got %q", MaxInstances, v)
		}
		perFunction = n
	}
	tmpl, err := samtemplate.Embedded()
	if err != nil {
		return err
	}
	if len(tmpl.Functions) == 0 {
		return errors.New("template has no AWS::Serverless::Function")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	dbNote := "DYNAMODB_ENDPOINT"
	if e.get("DYNAMODB_ENDPOINT") == "" {
		root, err := localdb.FindRoot()
		if err != nil {
			return err
		}
		srv, err := localdb.Start(ctx, root)
		if err != nil {
			return fmt.Errorf("start DynamoDB Local: %w", err)
		}
		defer srv.Stop()
		e.set["DYNAMODB_ENDPOINT"] = srv.Endpoint
		dbNote = "started here, in memory: data is gone when localapi stops"
	}

	// Dev-only defaults: the deployed stack gets these from its parameters.
	var generated string
	if e.get("MASTER_USERNAME") == "" {
		e.set["MASTER_USERNAME"] = "admin"
	}
	if e.get("MASTER_PASSWORD") == "" && e.get("MASTER_PASSWORD_SECRET") == "" {
		if generated, err = newPassword(24); err != nil {
			return err
		}
		e.set["MASTER_PASSWORD"] = generated
	}
	if e.get("ALLOWED_ORIGINS") == "" {
		e.set["ALLOWED_ORIGINS"] = fmt.Sprintf("http://localhost:%d,http://127.0.0.1:%d", port, port)
	}

	base, err := config.Load("localapi", e.get)
	if err != nil {
		return err
	}
	ac, err := store.LoadAWS(ctx, base.Region, base.DynamoDBEndpoint)
	if err != nil {
		return err
	}
	created, err := tables.Bootstrap(ctx, store.NewAdminDynamoDB(ac, base.DynamoDBEndpoint), tmpl.Tables, base.Tables)
	if err != nil {
		return fmt.Errorf("create tables on %s: %w", base.DynamoDBEndpoint, err)
	}

	var routes []Route
	var schedules []schedule
	var allDeps []*platform.Deps // every instance's, for the final metrics flush
	for _, fn := range tmpl.Functions {
		code, ok := functions[fn.LogicalID]
		if !ok {
			return fmt.Errorf("template function %s has no local counterpart in cmd/localapi", fn.LogicalID)
		}
		// As Lambda would: the function's memory size is in its environment.
		cfg, err := config.Load(code.name, e.with("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", strconv.Itoa(fn.MemoryMB)).get)
		if err != nil {
			return fmt.Errorf("%s: %w", code.name, err)
		}
		// Each instance is what one Lambda execution environment holds.
		rr := &roundRobin{}
		for range perFunction {
			deps, err := platform.New(ctx, cfg)
			if err != nil {
				return fmt.Errorf("%s: %w", code.name, err)
			}
			allDeps = append(allDeps, deps)
			h, inv, err := code.build(ctx, deps)
			if err != nil {
				return fmt.Errorf("%s: %w", code.name, err)
			}
			rr.handlers = append(rr.handlers, h)
			if inv != nil {
				rr.invokers = append(rr.invokers, inv)
			}
		}
		handler := Handler(rr.Handle)
		if perFunction == 1 {
			handler = rr.handlers[0]
		}
		var invoker Invoker
		if len(rr.invokers) > 0 {
			invoker = rr.Invoke
		}
		timeout := time.Duration(fn.Timeout) * time.Second
		for _, rs := range fn.Routes {
			routes = append(routes, Route{RouteSpec: rs, Function: code.name, Timeout: timeout, Handler: handler})
		}
		for _, expr := range fn.Schedules {
			every, err := parseRate(expr)
			if err != nil {
				fmt.Fprintf(out, "  note: %s schedule %q is not run locally: %v\n", code.name, expr, err)
				continue
			}
			if invoker == nil {
				return fmt.Errorf("%s has a schedule but no raw handler", code.name)
			}
			schedules = append(schedules, schedule{function: code.name, every: every, timeout: timeout, invoke: invoker})
		}
	}
	gw, err := NewGateway(routes, tmpl.CORS, base.AllowedOrigins, logger)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("listen on 127.0.0.1:%d (set PORT to use another): %w", port, err)
	}
	server := &http.Server{Handler: WithDocument(gw, zenith.OpenAPI), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(ln) }()

	var debugURL string
	if addr := strings.TrimSpace(e.get("LOCALAPI_DEBUG_ADDR")); addr != "" {
		dl, err := net.Listen("tcp", addr)
		if err != nil {
			_ = server.Close()
			return fmt.Errorf("LOCALAPI_DEBUG_ADDR: listen on %s: %w", addr, err)
		}
		publishGoroutines()
		mux := http.NewServeMux()
		mux.Handle("/debug/vars", expvar.Handler())
		debug := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = debug.Serve(dl) }()
		defer debug.Close()
		debugURL = "http://" + dl.Addr().String() + "/debug/vars"
	}

	var wg sync.WaitGroup
	schedCtx, stopSchedules := context.WithCancel(ctx)
	defer stopSchedules()
	for _, s := range schedules {
		wg.Add(1)
		go func() { defer wg.Done(); s.run(schedCtx, logger) }()
	}

	banner(out, port, base, dbNote, created, routes, schedules, generated, perFunction, debugURL)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		stopSchedules()
		wg.Wait()
		return fmt.Errorf("server stopped: %w", err)
	}
	fmt.Fprintln(out, "localapi: stopping")
	stopSchedules()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil {
		logger.Warn("shutdown", "err", err)
	}
	wg.Wait()
	// As each function does on SIGTERM: write the counts its recorder holds.
	for _, d := range allDeps {
		if err := d.Recorder.Flush(shutdownCtx); err != nil {
			logger.Warn("final metrics flush", "function", d.Function, "err", err)
		}
	}
	return nil // deferred: DynamoDB Local stops
}

func banner(out io.Writer, port int, cfg config.Config, dbNote string, created []tables.Result, routes []Route, schedules []schedule, generated string, instances int, debugURL string) {
	fmt.Fprintf(out, "Zenith local API listening on http://127.0.0.1:%d\n", port)
	fmt.Fprintf(out, "  DynamoDB:   %s (%s)\n", cfg.DynamoDBEndpoint, dbNote)
	names := make([]string, 0, len(created))
	for _, r := range created {
		names = append(names, r.Name)
	}
	fmt.Fprintf(out, "  tables:     %s\n", strings.Join(names, ", "))
	fmt.Fprintln(out, "  routes:")
	for _, r := range routes {
		fmt.Fprintf(out, "    %-36s -> %s\n", r.Key(), r.Function)
	}
	for _, s := range schedules {
		fmt.Fprintf(out, "  schedule:   %s every %s (the alert evaluator)\n", s.function, s.every)
	}
	fmt.Fprintf(out, "  openapi:    http://127.0.0.1:%d%s (the contract as OpenAPI 3.1, openapi.yaml)\n", port, DocumentPath)
	fmt.Fprintf(out, "  origins:    %s (ALLOWED_ORIGINS)\n", strings.Join(cfg.AllowedOrigins, ", "))
	if generated != "" {
		fmt.Fprintf(out, "  master user: %s, password %s (generated for this run; set MASTER_PASSWORD to choose one)\n",
			cfg.MasterUsername, generated)
	} else {
		fmt.Fprintf(out, "  master user: %s (password from the environment)\n", cfg.MasterUsername)
	}
	if instances > 1 {
		fmt.Fprintf(out, "  instances:  %d of each function, requests spread round-robin (LOCALAPI_INSTANCES)\n", instances)
	}
	if debugURL != "" {
		fmt.Fprintf(out, "  debug:      %s (LOCALAPI_DEBUG_ADDR)\n", debugURL)
	}
	fmt.Fprintln(out, "Ctrl-C stops everything.")
}

// DocumentPath is where the local server serves the OpenAPI document.
const DocumentPath = "/openapi.yaml"

// WithDocument answers GET (and HEAD) DocumentPath with doc, the embedded
// openapi.yaml, and hands every other request to next. It is the local
// server's own page, not a route of the template: the deployed API does not
// serve it, so next (API Gateway's routing) never sees it.
func WithDocument(next http.Handler, doc []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != DocumentPath || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(doc)
		}
	})
}

// schedule runs a function's rate() schedule with EventBridge's scheduled event.
type schedule struct {
	function string
	every    time.Duration
	timeout  time.Duration
	invoke   Invoker
}

func (s schedule) run(ctx context.Context, logger *slog.Logger) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			payload, _ := json.Marshal(map[string]any{
				"version": "0", "id": randomID(), "detail-type": "Scheduled Event", "source": "aws.events",
				"account": "000000000000", "time": now.UTC().Format(time.RFC3339), "region": "local",
				"resources": []string{"arn:aws:events:local:000000000000:rule/" + s.function + "-schedule"},
				"detail":    map[string]any{},
			})
			runCtx, cancel := context.WithTimeout(ctx, s.timeout)
			if _, err := s.invoke(runCtx, payload); err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("scheduled run failed", "function", s.function, "err", err)
			}
			cancel()
		}
	}
}

var rateExpr = regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$`)

// parseRate reads an EventBridge rate() expression; cron() is not run locally.
func parseRate(expr string) (time.Duration, error) {
	m := rateExpr.FindStringSubmatch(strings.TrimSpace(expr))
	if m == nil {
		return 0, errors.New("only rate(N minute[s]|hour[s]|day[s]) is supported")
	}
	n, _ := strconv.Atoi(m[1])
	if n < 1 {
		return 0, errors.New("rate must be at least 1")
	}
	unit := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[strings.TrimSuffix(m[2], "s")]
	return time.Duration(n) * unit, nil
}

// newPassword returns n characters from a 62-letter alphabet, uniformly, from crypto/rand.
func newPassword(n int) (string, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			return "", fmt.Errorf("generate master password: %w", err)
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b), nil
}
