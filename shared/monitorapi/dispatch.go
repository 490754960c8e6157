package monitorapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zenithfresh/zenith-serverless/shared/alerts"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/monitor"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
)

// Handler is the system-monitor Lambda entry point: API Gateway HTTP API
// events go to the app, EventBridge scheduled events run the alert evaluation.
type Handler struct {
	app     *httpapi.App
	monitor *monitor.Monitor
	logger  *slog.Logger
}

// NewHandler builds the app and the monitor on the shared dependencies.
func NewHandler(ctx context.Context, d *platform.Deps, opts ...Option) (*Handler, error) {
	m, err := newMonitor(d, opts...)
	if err != nil {
		return nil, err
	}
	h := &Handler{monitor: m, logger: d.Logger}
	h.app = d.Install(&httpapi.App{
		Routes: h.routes(),
		EnvelopeFor: func(method string) httpapi.Envelope {
			if method == http.MethodGet {
				return httpapi.EnvelopeMonitor
			}
			return httpapi.EnvelopeStandard
		},
	})
	return h, nil
}

// App returns the HTTP app (for the local API server and tests).
func (h *Handler) App() *httpapi.App { return h.app }

// Monitor returns the monitor behind the routes.
func (h *Handler) Monitor() *monitor.Monitor { return h.monitor }

// EvaluationResult is what a scheduled invocation returns (and logs).
type EvaluationResult struct {
	Window  int64           `json:"window"` // epoch ms of the minute evaluated
	Results []alerts.Result `json:"results"`
}

// eventProbe holds the fields that tell the event kinds apart.
type eventProbe struct {
	Source         string          `json:"source"`
	DetailType     string          `json:"detail-type"`
	RequestContext json.RawMessage `json:"requestContext"`
	RawPath        string          `json:"rawPath"`
}

// ErrUnsupportedEvent is returned for a payload that is neither an HTTP API
// event nor a scheduled event.
var ErrUnsupportedEvent = errors.New("unsupported event")

// Invoke is the Lambda handler (lambda.Start(h.Invoke)). It dispatches on the
// raw JSON: an EventBridge event (source aws.events or detail-type
// "Scheduled Event") runs the alert evaluation, whose failure is returned so
// Lambda retries it (every write is idempotent) and the Errors alarm sees it;
// an API Gateway v2 event goes to the app, which answers every HTTP outcome.
func (h *Handler) Invoke(ctx context.Context, payload json.RawMessage) (any, error) {
	var probe eventProbe
	if err := json.Unmarshal(payload, &probe); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedEvent, err)
	}
	switch {
	case probe.Source == "aws.events" || probe.DetailType == "Scheduled Event":
		return h.evaluate(ctx)
	case len(probe.RequestContext) > 0 && !bytes.Equal(probe.RequestContext, []byte("null")) || probe.RawPath != "":
		var ev events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnsupportedEvent, err)
		}
		return h.app.Handle(ctx, ev)
	}
	return nil, ErrUnsupportedEvent
}

func (h *Handler) evaluate(ctx context.Context) (EvaluationResult, error) {
	ctx, cancel := context.WithTimeout(ctx, evaluationTimeout)
	defer cancel()
	window, results, err := h.monitor.EvaluateAlerts(ctx)
	out := EvaluationResult{Window: window.UnixMilli(), Results: results}
	for _, r := range results {
		if r.Action == alerts.ActionRaised || r.Action == alerts.ActionResolved {
			h.logger.InfoContext(ctx, "alert "+string(r.Action), "rule", r.Rule, "alertId", r.AlertID)
		}
	}
	if err != nil {
		h.logger.ErrorContext(ctx, "alert evaluation failed", "err", err)
		return out, fmt.Errorf("alert evaluation: %w", err)
	}
	return out, nil
}
