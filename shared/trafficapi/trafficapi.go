// Package trafficapi holds the routes of the traffic-manager function
// (API.md "/api/traffic-manager"): the front-door check (the frontdoor rate
// limit policy, then load shedding), the free status answer, and the
// operator's load override.
package trafficapi

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/load"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/ratelimit"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// Path is the function's one route.
const Path = "/api/traffic-manager"

// CodeInvalidParameter answers a bad ?status=.
const CodeInvalidParameter = "INVALID_PARAMETER"

// overloadRetryAfter is the original's RETRY_AFTER_SECONDS for SYS_OVERLOAD.
const overloadRetryAfter = 30

// MaxFallbackAge bounds how old the instance's last load measurement may be
// for the front door to still shed on it when a fresh one cannot be read. A
// short store blip during a real overload keeps shedding; an outage does not
// keep answering SYS_OVERLOAD from a figure measured long ago: past this age
// the front door admits (as the original did when its load check failed) and
// status=true reports "degraded".
const MaxFallbackAge = 10 * time.Second

// Defaults of the original POST when simulateLoad is true and a field is absent.
const (
	defaultConnections = 100
	defaultLoad        = 0.1
)

type handler struct {
	clock     clock.Clock
	random    clock.Random
	meter     *load.Meter
	overrides *load.Overrides
	shedding  load.Shedding
	frontdoor ratelimit.Policy // reported by status=true
}

// New builds the traffic-manager function's app on the shared dependencies.
func New(ctx context.Context, d *platform.Deps) (*httpapi.App, error) {
	frontdoor, ok := d.Limiter.Policy(ratelimit.PolicyFrontdoor)
	if !ok {
		return nil, fmt.Errorf("traffic-manager: no %s rate limit policy", ratelimit.PolicyFrontdoor)
	}
	h := &handler{
		clock:     d.Clock,
		random:    d.Random,
		meter:     d.Meter,
		overrides: d.Overrides,
		shedding:  d.Shedding,
		frontdoor: frontdoor,
	}
	if h.random == nil {
		h.random = clock.CryptoRandom{}
	}
	app := &httpapi.App{
		Routes: []httpapi.Route{
			// The front door's load reading (a refresh every 2 s at most)
			// goes alongside its limiter decision.
			{Method: http.MethodGet, Path: Path, Handler: h.get, Prefetch: h.prefetchLoad},
			{Method: http.MethodPost, Path: Path, Permission: users.PermTrafficControl, Handler: h.post},
		},
		EnvelopeFor: func(m string) httpapi.Envelope {
			if m == http.MethodGet {
				return httpapi.EnvelopeTraffic
			}
			return httpapi.EnvelopeStandard
		},
		PolicyFor: PolicyFor,
	}
	return d.Install(app), nil
}

// PolicyFor picks the limiter policy: GET /api/traffic-manager with
// status=true (any case) spends nothing, any other GET of it is the front
// door (one unit of frontdoor only, not also of api), everything else is api.
func PolicyFor(r *httpapi.Request) string {
	if r.Method != http.MethodGet || strings.Trim(r.Path, "/") != strings.Trim(Path, "/") {
		return ratelimit.PolicyAPI
	}
	if v, ok := r.Query["status"]; ok && strings.EqualFold(v, "true") {
		return httpapi.PolicyNone
	}
	return ratelimit.PolicyFrontdoor
}

// ParseStatus reads ?status=: absent is false; "true"/"false" in any case;
// anything else (the empty string too, as the original) is 400 INVALID_PARAMETER.
func ParseStatus(query map[string]string) (bool, error) {
	v, ok := query["status"]
	if !ok {
		return false, nil
	}
	switch strings.ToLower(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, httpapi.BadRequest(CodeInvalidParameter, "status must be 'true' or 'false'")
}

func (h *handler) get(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	status, err := ParseStatus(r.Query)
	if err != nil {
		return nil, err
	}
	if status {
		return h.status(ctx, r), nil
	}
	return h.frontDoor(ctx, r)
}

// reading is one look at the load by a handler.
type reading struct {
	snap load.Snapshot // the fresh measurement, else the instance's last one (zero if none)
	// fresh: measured now or served from the meter's ≤ 2 s cache.
	fresh bool
	// usable: fresh, or the last measurement is at most MaxFallbackAge old;
	// only a usable reading sheds traffic or is shown as the current load.
	usable bool
	// known: there is a measurement at all (fresh or last, of any age).
	known bool
}

// read reads the load; when the store cannot be read it falls back to the
// last measurement of this instance, usable only while it is at most
// MaxFallbackAge old.
func (h *handler) read(ctx context.Context, r *httpapi.Request) reading {
	s, err := h.meter.Snapshot(ctx)
	if err == nil {
		return reading{snap: s, fresh: true, usable: true, known: true}
	}
	r.Logger.WarnContext(ctx, "load check failed", "event", "load_check_failed", "err", err)
	s, ok := h.meter.Last()
	if !ok {
		return reading{}
	}
	now := h.clock.Now()
	usable := !now.Before(s.At) && now.Sub(s.At) <= MaxFallbackAge
	return reading{snap: s, usable: usable, known: true}
}

func (h *handler) status(ctx context.Context, r *httpapi.Request) *httpapi.Response {
	rd := h.read(ctx, r)
	snap := rd.snap
	now := h.clock.Now()
	systemLoad := map[string]any{
		"currentLoad":         round(snap.CurrentLoad, 4),
		"cpuLoad":             nil, // Lambda exposes no CPU figure; the load keeps its own names
		"memoryUsage":         nil, // not measured here (see the system monitor)
		"measuredLoad":        round(snap.MeasuredLoad, 4),
		"overrideLoad":        round(snap.OverrideLoad, 4),
		"requestsLastMinute":  snap.RequestsLastMinute,
		"admittedLastMinute":  snap.AdmittedLastMinute,
		"capacityRpm":         h.meter.CapacityRPM(),
		"activeConnections":   round(snap.ActiveConnections, 2),
		"overrideConnections": snap.OverrideConnections,
		"simulateLoad":        snap.SimulateLoad,
		"simulationEnabled":   h.shedding.SimulationEnabled,
		"isOverloaded":        rd.usable && h.shedding.Overloaded(snap),
		"timestamp":           snap.At.UTC().Format(time.RFC3339Nano),
	}
	state := "operational"
	if !rd.fresh {
		state = "degraded"
		systemLoad["error"] = true
		systemLoad["message"] = "Load check failed"
		if !rd.known {
			systemLoad["timestamp"] = nil
		}
	} else if h.shedding.Overloaded(snap) {
		state = "degraded"
	}
	return httpapi.JSON(http.StatusOK, map[string]any{
		"status":     state,
		"systemLoad": systemLoad,
		"rateLimit": map[string]any{
			"limit":     h.frontdoor.RPM,
			"window":    h.frontdoor.Window.Milliseconds(),
			"threshold": h.shedding.Threshold,
		},
		"processingTime": r.ProcessingTime(now),
		"timestamp":      now.UTC().Format(time.RFC3339Nano),
	})
}

// prefetchLoad reads the load for the front door while the limiter decides.
func (h *handler) prefetchLoad(ctx context.Context, r *httpapi.Request) any {
	if status, err := ParseStatus(r.Query); err != nil || status {
		return nil
	}
	return h.read(ctx, r)
}

func (h *handler) frontDoor(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	rd, ok := httpapi.Prefetched[reading](r)
	if !ok {
		rd = h.read(ctx, r)
	}
	// Shed only on a recent measurement; with none (or only one older than
	// MaxFallbackAge) the request goes through, as the original did when its
	// load check failed.
	if rd.usable && h.shedding.Shed(rd.snap, h.random.Float64) {
		return nil, Overload()
	}
	systemLoad := "unknown"
	if rd.usable {
		systemLoad = strconv.FormatFloat(rd.snap.CurrentLoad, 'f', 2, 64)
	}
	now := h.clock.Now()
	ms := now.Sub(r.Started).Milliseconds()
	res := httpapi.JSON(http.StatusOK, map[string]any{
		"success": true,
		"message": "Request processed successfully",
		"metrics": map[string]any{
			"processingTime": r.ProcessingTime(now),
			"systemLoad":     systemLoad,
			"requestId":      r.RequestID,
		},
	})
	res.Headers = map[string]string{
		"X-Processing-Time": strconv.FormatInt(ms, 10),
		"X-System-Load":     systemLoad,
	}
	return res, nil
}

// Overload is the 503 SYS_OVERLOAD answer of a shed request.
func Overload() *httpapi.Error {
	return httpapi.NewError(http.StatusServiceUnavailable, httpapi.CodeOverload, "System is currently experiencing high load. Please try again shortly.").
		WithHeader("Retry-After", strconv.Itoa(overloadRetryAfter)).
		WithExtra("retryAfter", overloadRetryAfter).
		WithExtra("severity", "medium").
		WithExtra("advice", "Monitor system status and retry when load decreases")
}

func (h *handler) post(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	in, err := ParseOverride(r.Body)
	if err != nil {
		return nil, err
	}
	applied := map[string]any{"simulateLoad": in.SimulateLoad, "connectionsAdded": 0, "loadAdded": 0}
	if in.SimulateLoad {
		ov, err := h.overrides.Add(ctx, in.Connections, in.Load)
		if err != nil {
			return nil, err
		}
		applied["connectionsAdded"] = in.Connections
		applied["loadAdded"] = in.Load
		r.Logger.InfoContext(ctx, "load override added", "event", "load_override",
			"user", r.Principal.Username, "connections", in.Connections, "load", in.Load,
			"expiresAt", ov.ExpiresAt.UTC().Format(time.RFC3339))
		h.meter.Invalidate()
	}
	// The override is stored; a failing read now must not make the client
	// retry (and add it twice), so fall back to the last measurement.
	snap := h.read(ctx, r).snap
	now := h.clock.Now()
	lastUpdated := snap.At.UnixMilli()
	if snap.At.IsZero() {
		lastUpdated = now.UnixMilli()
	}
	return httpapi.JSON(http.StatusOK, map[string]any{
		"success": true,
		"message": "Traffic simulation updated successfully",
		"applied": applied,
		"currentMetrics": map[string]any{
			"activeConnections": round(snap.ActiveConnections, 2),
			"currentLoad":       round(snap.CurrentLoad, 4),
			"lastUpdated":       lastUpdated,
		},
		"processingTime": r.ProcessingTime(now),
	}), nil
}

func round(f float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(f*p) / p
}
