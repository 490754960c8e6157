// Package monitorapi holds the routes of the system-monitor function
// (GET/POST /api/system-monitor, POST /api/system-monitor/alerts/{id}/acknowledge,
// GET /api/health) and the entry point that also accepts the EventBridge schedule running the
// alert evaluation.
package monitorapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"

	"github.com/zenithfresh/zenith-serverless/shared/alerts"
	"github.com/zenithfresh/zenith-serverless/shared/buildinfo"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/metrics/cwhistory"
	"github.com/zenithfresh/zenith-serverless/shared/monitor"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// Functions are the functions whose EMF metrics the CloudWatch history sums.
var Functions = []string{"auth", "session", "traffic-manager", "system-monitor"}

// Option adjusts New / NewHandler.
type Option func(*options)

type options struct {
	cloudWatch []func(*cloudwatch.Options)
	memory     func() *float64
}

// WithCloudWatchOptions adds CloudWatch client options (e.g. BaseEndpoint for
// a test server).
func WithCloudWatchOptions(fns ...func(*cloudwatch.Options)) Option {
	return func(o *options) { o.cloudWatch = append(o.cloudWatch, fns...) }
}

// WithMemory replaces the memory gauge (fraction of the configured size, nil
// when unknown); tests use it to drive the memory rule.
func WithMemory(fn func() *float64) Option { return func(o *options) { o.memory = fn } }

// New builds the system-monitor function's app on the shared dependencies.
func New(ctx context.Context, d *platform.Deps, opts ...Option) (*httpapi.App, error) {
	h, err := NewHandler(ctx, d, opts...)
	if err != nil {
		return nil, err
	}
	return h.App(), nil
}

// newMonitor builds the monitor (figures, history, alerts) on the shared
// dependencies, with the CloudWatch history reader when that is the source.
func newMonitor(d *platform.Deps, opts ...Option) (*monitor.Monitor, error) {
	o := options{}
	for _, fn := range opts {
		fn(&o)
	}
	var history monitor.MinuteReader
	if d.Monitor.Source == "cloudwatch" {
		// Built on the first history read: a start does not pay for a client
		// most instances never use.
		cw := &lazyCloudWatch{build: func() *cloudwatch.Client { return cloudwatch.NewFromConfig(d.AWS, o.cloudWatch...) }}
		history = cwhistory.New(cw, metrics.Namespace, Functions)
	}
	return monitor.New(d.DB, d.Monitor, history, o.memory, d.Clock, d.Logger)
}

// lazyCloudWatch builds its CloudWatch client on first use.
type lazyCloudWatch struct {
	build  func() *cloudwatch.Client
	once   sync.Once
	client *cloudwatch.Client
}

func (l *lazyCloudWatch) GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	l.once.Do(func() { l.client = l.build() })
	return l.client.GetMetricData(ctx, in, opts...)
}

func (h *Handler) routes() []httpapi.Route {
	return []httpapi.Route{
		{Method: http.MethodGet, Path: "/api/system-monitor", Permission: users.PermSystemMonitoring, Handler: h.get},
		{Method: http.MethodPost, Path: "/api/system-monitor", Permission: users.PermSystemMonitoring, Handler: h.post},
		{Method: http.MethodPost, Path: "/api/system-monitor/alerts/{id}/acknowledge", Permission: users.PermSystemMonitoring, Handler: h.acknowledge},
		// A probe: no session read, no limiter quota, no metrics flush.
		{Method: http.MethodGet, Path: "/api/health", Permission: httpapi.Public, Handler: h.health, Probe: true},
	}
}

// health answers GET /api/health (API.md "/api/health"): readiness from this
// instance's cached DynamoDB check. Both answers are health bodies, not
// error envelopes.
func (h *Handler) health(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	body := map[string]any{
		"version":   buildinfo.Version,
		"timestamp": isoMillis(h.monitor.Now()),
		"requestId": r.RequestID,
	}
	if h.monitor.Ready(ctx) {
		body["status"], body["checks"] = "ok", map[string]string{"dynamodb": "ok"}
		return httpapi.JSON(http.StatusOK, body), nil
	}
	body["status"], body["checks"] = "unavailable", map[string]string{"dynamodb": "unreachable"}
	res := httpapi.JSON(http.StatusServiceUnavailable, body)
	res.Headers = map[string]string{"Retry-After": strconv.Itoa(int(monitor.ReadinessCacheFor / time.Second))}
	return res, nil
}

func (h *Handler) get(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	q, err := ParseQuery(r.Query)
	if err != nil {
		return nil, err
	}
	m := h.monitor
	switch q.Endpoint {
	case EndpointHistory:
		return h.history(ctx, r, q.Hours)
	case EndpointAlerts:
		list, err := m.Alerts(ctx)
		if err != nil {
			return nil, err
		}
		return h.ok(r, map[string]any{"alerts": list, "timestamp": m.Now().UnixMilli()}), nil
	}
	// The figures, the peak and the alerts are read together.
	f, list, err := m.Snapshot(ctx, monitor.Want{Peak: q.Endpoint != EndpointHealth, Alerts: q.Endpoint != EndpointMetrics})
	if err != nil {
		return nil, err
	}
	if q.Endpoint == EndpointMetrics {
		return h.ok(r, metricsBody(f)), nil
	}
	if list == nil {
		list = []alerts.Alert{}
	}
	score, status := monitor.Health(nil, f.Memory, f.ErrorRate, f.CurrentLoad)
	if q.Endpoint == EndpointHealth {
		return h.ok(r, map[string]any{"status": status, "score": score, "alerts": list}), nil
	}
	var uptime any
	if f.Availability != nil {
		uptime = fmt.Sprintf("%.2f%%", *f.Availability)
	}
	return h.ok(r, map[string]any{
		"overview": map[string]any{
			"status": status, "healthScore": score, "uptime": uptime, "lastUpdate": isoMillis(f.Now),
		},
		"traffic": map[string]any{
			"requestsPerMinute": f.Rate, "totalRequests": f.Total, "errorRate": f.ErrorRate,
			"activeUsers": round2(f.ActiveConnections),
		},
		"performance": map[string]any{
			"averageResponseTime": round2(f.AverageResponseTime), "cpuUsage": nil,
			"memoryUsage": percent(f.Memory), "diskUsage": nil,
		},
		"alerts": list,
	}), nil
}

func metricsBody(f monitor.Figures) map[string]any {
	return map[string]any{
		"timestamp": f.Now.UnixMilli(),
		"requests": map[string]any{
			"total": f.Total, "successful": f.Successful, "failed": f.Failed, "rate": f.Rate,
		},
		"performance": map[string]any{
			"averageResponseTime": round2(f.AverageResponseTime), "slowQueries": f.SlowQueries,
			"errorRate": f.ErrorRate, "availability": f.Availability,
		},
		"resources": map[string]any{
			"memoryUsage": f.Memory, "cpuLoad": nil, "activeConnections": round2(f.ActiveConnections),
			"diskUsage": nil, "networkIO": nil,
		},
		"traffic": map[string]any{
			"currentLoad": f.CurrentLoad, "peakLoad": f.PeakLoad, "throttledRequests": f.Throttled,
		},
	}
}

func (h *Handler) history(ctx context.Context, r *httpapi.Request, hours int) (*httpapi.Response, error) {
	m := h.monitor
	ms, now, err := m.History(ctx, hours)
	if err != nil {
		return nil, err
	}
	data := make([]map[string]any, len(ms))
	for i, p := range ms {
		var errRate, avg float64
		if p.Requests > 0 {
			errRate = float64(p.Errors5xx) / float64(p.Requests) * 100
			avg = float64(p.DurationMs) / float64(p.Requests)
		}
		data[i] = map[string]any{
			"timestamp": p.Start.UnixMilli(), "requestRate": p.Requests, "errorRate": errRate,
			"averageResponseTime": math.Round(avg*100) / 100,
			// Per-minute CPU and memory are not measured (Lambda exposes neither as history).
			"cpuLoad": nil, "memoryUsage": nil,
		}
	}
	return h.ok(r, map[string]any{
		// Literally "<h> hour(s)", as the original wrote it.
		"timeRange": fmt.Sprintf("%d hour(s)", hours), "dataPoints": len(data), "data": data,
		"source": m.Source(), "timestamp": now.UnixMilli(),
	}), nil
}

func (h *Handler) post(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	s, err := ParseSample(r.Body)
	if err != nil {
		return nil, err
	}
	s.ReportedBy = r.Principal.Username
	if err := h.monitor.Report(ctx, s); err != nil {
		return nil, err
	}
	return h.ok(r, map[string]any{
		"success": true, "message": "Metrics updated successfully",
		"updated": map[string]any{"requests": s.Requests, "performance": s.Performance},
	}), nil
}

func (h *Handler) acknowledge(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	a, err := h.monitor.Acknowledge(ctx, r.Params["id"], r.Principal.Username)
	if errors.Is(err, alerts.ErrNotFound) {
		return nil, errNotFoundAlert()
	}
	if err != nil {
		return nil, err
	}
	return h.ok(r, map[string]any{
		"success": true, "message": "Alert acknowledged", "alert": a,
	}), nil
}

// ok is a 200 answer of the route: the original put processingTime on each.
func (h *Handler) ok(r *httpapi.Request, body map[string]any) *httpapi.Response {
	body["processingTime"] = r.ProcessingTime(h.monitor.Now())
	return httpapi.JSON(http.StatusOK, body)
}

// isoMillis is JavaScript's Date.toISOString(): UTC, milliseconds, "Z".
func isoMillis(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func round2(v *float64) *float64 {
	if v == nil {
		return nil
	}
	r := math.Round(*v*100) / 100
	return &r
}

func percent(v *float64) *int {
	if v == nil {
		return nil
	}
	p := int(math.Round(*v * 100))
	return &p
}

// evaluationTimeout bounds one scheduled evaluation (a few DynamoDB calls),
// below the function's 20 s timeout so a slow run ends as a reported error.
const evaluationTimeout = 15 * time.Second
