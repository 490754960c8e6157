package metrics

import (
	"encoding/json"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Namespace is the CloudWatch namespace of every metric the functions emit.
const Namespace = "ZenithFresh"

// Metric names of the Embedded Metric Format lines. The history reader and the
// template's dashboards use the same names.
const (
	MetricRequests       = "Requests"
	MetricErrors5xx      = "Errors5xx"
	MetricThrottled      = "Throttled"
	MetricLatencyMs      = "LatencyMs"
	MetricFailedLogins   = "FailedLogins"
	MetricSecurityEvents = "SecurityEvents"
	// MetricReadUnits and MetricWriteUnits are the DynamoDB capacity units a
	// request's own calls consumed (Observation.ReadUnits, WriteUnits).
	MetricReadUnits  = "ReadUnits"
	MetricWriteUnits = "WriteUnits"
)

// Dimension names. Only the function and the route pattern are dimensions:
// both come from a small fixed set, so the metric count stays bounded, and
// no client identity ever becomes a dimension.
const (
	DimFunction = "function"
	DimRoute    = "route"
)

// EMF limits from the specification (and CloudWatch's own for dimensions).
const (
	MaxMetricsPerDirective = 100
	MaxDimensionsPerSet    = 30
	MaxDimensionValueLen   = 1024
)

// requestDirective is constant: it is rendered once and reused on every line.
var requestDirective = mustJSON([]map[string]any{{
	"Namespace":  Namespace,
	"Dimensions": [][]string{{DimFunction}, {DimFunction, DimRoute}},
	"Metrics": []map[string]string{
		{"Name": MetricRequests, "Unit": "Count"},
		{"Name": MetricErrors5xx, "Unit": "Count"},
		{"Name": MetricThrottled, "Unit": "Count"},
		{"Name": MetricLatencyMs, "Unit": "Milliseconds"},
		{"Name": MetricReadUnits, "Unit": "None"},
		{"Name": MetricWriteUnits, "Unit": "None"},
	},
}})

func eventDirective(metric string) json.RawMessage {
	return mustJSON([]map[string]any{{
		"Namespace":  Namespace,
		"Dimensions": [][]string{{DimFunction}},
		"Metrics":    []map[string]string{{"Name": metric, "Unit": "Count"}},
	}})
}

var (
	failedLoginDirective   = eventDirective(MetricFailedLogins)
	securityEventDirective = eventDirective(MetricSecurityEvents)
)

type emfMeta struct {
	Timestamp         int64           `json:"Timestamp"`
	CloudWatchMetrics json.RawMessage `json:"CloudWatchMetrics"`
}

// requestLine is one request's EMF document. Dimension values and metric
// values are root members, as the specification requires; method and status
// and the error code are plain properties (searchable in Logs Insights, not
// metrics).
type requestLine struct {
	AWS        emfMeta `json:"_aws"`
	Function   string  `json:"function"`
	Route      string  `json:"route"`
	Method     string  `json:"method"`
	Status     int     `json:"status"`
	Code       string  `json:"code,omitempty"`
	Requests   int     `json:"Requests"`
	Errors5xx  int     `json:"Errors5xx"`
	Throttled  int     `json:"Throttled"`
	LatencyMs  float64 `json:"LatencyMs"`
	ReadUnits  float64 `json:"ReadUnits"`
	WriteUnits float64 `json:"WriteUnits"`
}

type eventLine struct {
	AWS            emfMeta `json:"_aws"`
	Function       string  `json:"function"`
	Event          string  `json:"event"`
	FailedLogins   *int    `json:"FailedLogins,omitempty"`
	SecurityEvents *int    `json:"SecurityEvents,omitempty"`
}

// RequestLine renders the EMF line (without newline) for one finished request.
// The route dimension is "<METHOD> <pattern>" for a matched route, or
// "unmatched" (never the raw path or method of an unmatched request, which a
// client controls). Status and Throttled decide Errors5xx and Throttled as
// Classify does; the error code is a plain property.
func RequestLine(o Observation) []byte {
	failed, throttled := Classify(o.Status, o.Throttled)
	line := requestLine{
		AWS:        emfMeta{Timestamp: o.At.UnixMilli(), CloudWatchMetrics: requestDirective},
		Function:   dimensionValue(o.Function, "unknown"),
		Route:      dimensionValue(RouteDimension(o.Method, o.Route), "unmatched"),
		Method:     dimensionValue(o.Method, "UNKNOWN"),
		Status:     o.Status,
		Code:       dimensionValue(o.Code, ""),
		Requests:   1,
		Errors5xx:  boolInt(failed),
		Throttled:  boolInt(throttled),
		LatencyMs:  float64(max(o.Duration, 0).Microseconds()) / 1000,
		ReadUnits:  units(o.ReadUnits),
		WriteUnits: units(o.WriteUnits),
	}
	b, err := json.Marshal(line)
	if err != nil { // cannot happen: every field is a plain string or number
		return nil
	}
	return b
}

// EventLine renders the EMF line for one security event of function.
func EventLine(at time.Time, function, event string) []byte {
	one := 1
	line := eventLine{
		AWS:      emfMeta{Timestamp: at.UnixMilli()},
		Function: dimensionValue(function, "unknown"),
		Event:    dimensionValue(event, "unknown"),
	}
	if event == EventFailedLogin {
		line.AWS.CloudWatchMetrics = failedLoginDirective
		line.FailedLogins = &one
	} else {
		line.AWS.CloudWatchMetrics = securityEventDirective
		line.SecurityEvents = &one
	}
	b, err := json.Marshal(line)
	if err != nil {
		return nil
	}
	return b
}

// RouteDimension is the route dimension value of a request.
func RouteDimension(method, pattern string) string {
	if pattern == "" || pattern == "unmatched" {
		return "unmatched"
	}
	return method + " " + pattern
}

// dimensionValue keeps a dimension value within CloudWatch's rules: valid
// UTF-8, not blank, at most 1024 characters.
func dimensionValue(v, fallback string) string {
	v = strings.ToValidUTF8(strings.TrimSpace(v), "?")
	if v == "" {
		return fallback
	}
	if utf8.RuneCountInString(v) > MaxDimensionValueLen {
		r := []rune(v)
		v = string(r[:MaxDimensionValueLen])
	}
	return v
}

// units keeps a capacity figure a valid EMF value (JSON has no NaN or Inf).
func units(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0
	}
	return v
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
