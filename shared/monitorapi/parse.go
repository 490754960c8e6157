package monitorapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
)

// Error codes of this route besides the common ones.
const (
	CodeInvalidEndpoint = "INVALID_ENDPOINT"
	CodeInvalidHours    = "INVALID_HOURS"
)

// Endpoints of GET /api/system-monitor.
const (
	EndpointOverview = "overview"
	EndpointMetrics  = "metrics"
	EndpointHistory  = "history"
	EndpointHealth   = "health"
	EndpointAlerts   = "alerts"
)

// MaxHours is the longest history (7 days: the counters' and alerts' TTL).
const MaxHours = 168

// maxReported bounds a posted figure; anything larger is not a real sample.
const maxReported = 1e12

// Query is a validated GET query.
type Query struct {
	Endpoint string
	Hours    int
}

// ParseQuery validates the GET query: endpoint (default overview; an empty
// value also means the default, as the original's `get(...) || default`) and,
// for history only, hours: a plain integer 1..168, 1 when absent (API.md:
// "default 1", "anything else 400"), so an explicitly empty `hours=` is 400
// INVALID_HOURS like "2x", "+2" or "1.0" (which the original's parseInt took).
// Other endpoints ignore hours whatever its value.
func ParseQuery(q map[string]string) (Query, error) {
	out := Query{Endpoint: q["endpoint"], Hours: 1}
	if out.Endpoint == "" {
		out.Endpoint = EndpointOverview
	}
	switch out.Endpoint {
	case EndpointOverview, EndpointMetrics, EndpointHistory, EndpointHealth, EndpointAlerts:
	default:
		return Query{}, httpapi.BadRequest(CodeInvalidEndpoint, "Invalid endpoint: use overview, metrics, history, health or alerts")
	}
	if out.Endpoint != EndpointHistory {
		return out, nil
	}
	if h, ok := q["hours"]; ok {
		n, ok := plainInt(h)
		if !ok || n < 1 || n > MaxHours {
			return Query{}, httpapi.BadRequest(CodeInvalidHours, fmt.Sprintf("hours must be an integer from 1 to %d", MaxHours))
		}
		out.Hours = n
	}
	return out, nil
}

func plainInt(s string) (int, bool) {
	if len(s) == 0 || len(s) > 6 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

type field struct {
	name    string
	integer bool
	max     float64
}

var requestFields = []field{
	{"total", true, maxReported},
	{"successful", true, maxReported},
	{"failed", true, maxReported},
	{"rate", false, maxReported},
}

var performanceFields = []field{
	{"averageResponseTime", false, maxReported},
	{"slowQueries", true, maxReported},
	{"errorRate", false, 100},
	{"availability", false, 100},
}

// ParseSample validates a POST body {requests?, performance?}: each an object
// (null counts as absent) of known numeric fields, non-negative, counts
// integers, errorRate and availability percents, at least one value in all,
// and successful + failed not over total. Unknown fields at either level are
// VALIDATION_ERROR; the error lists every problem.
func ParseSample(body []byte) (metrics.Sample, error) {
	var top struct {
		Requests    json.RawMessage `json:"requests"`
		Performance json.RawMessage `json:"performance"`
	}
	if err := httpapi.DecodeJSON(body, &top); err != nil {
		return metrics.Sample{}, err
	}
	var details []string
	reqVals, d1 := parseSection("requests", top.Requests, requestFields)
	perfVals, d2 := parseSection("performance", top.Performance, performanceFields)
	details = append(append(details, d1...), d2...)
	if len(details) == 0 && len(reqVals)+len(perfVals) == 0 {
		details = append(details, "at least one metric in requests or performance is required")
	}
	if t, ok := reqVals["total"]; ok {
		if s, f := reqVals["successful"], reqVals["failed"]; s+f > t {
			details = append(details, "requests.successful + requests.failed must not exceed requests.total")
		}
	}
	if len(details) > 0 {
		return metrics.Sample{}, httpapi.Validation(details...)
	}
	var s metrics.Sample
	if top.Requests != nil && !isNull(top.Requests) {
		s.Requests = &metrics.ReportedRequests{
			Total: intPtr(reqVals, "total"), Successful: intPtr(reqVals, "successful"),
			Failed: intPtr(reqVals, "failed"), Rate: floatPtr(reqVals, "rate"),
		}
	}
	if top.Performance != nil && !isNull(top.Performance) {
		s.Performance = &metrics.ReportedPerformance{
			AverageResponseTime: floatPtr(perfVals, "averageResponseTime"), SlowQueries: intPtr(perfVals, "slowQueries"),
			ErrorRate: floatPtr(perfVals, "errorRate"), Availability: floatPtr(perfVals, "availability"),
		}
	}
	return s, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func parseSection(name string, raw json.RawMessage, fields []field) (map[string]float64, []string) {
	if raw == nil || isNull(raw) {
		return nil, nil
	}
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, []string{name + " must be an object"}
	}
	vals := map[string]float64{}
	var details []string
	known := map[string]field{}
	for _, f := range fields {
		known[f.name] = f
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // stable error order
	for _, k := range keys {
		f, ok := known[k]
		path := name + "." + k
		if !ok {
			details = append(details, "unknown field "+strconv.Quote(path))
			continue
		}
		if isNull(m[k]) {
			continue
		}
		d := json.NewDecoder(bytes.NewReader(m[k]))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			details = append(details, path+" must be a number")
			continue
		}
		num, isNum := v.(json.Number)
		if !isNum {
			details = append(details, path+" must be a number")
			continue
		}
		x, err := num.Float64()
		switch {
		case err != nil || math.IsInf(x, 0) || math.IsNaN(x):
			details = append(details, path+" must be a finite number")
		case x < 0:
			details = append(details, path+" must not be negative")
		case x > f.max:
			details = append(details, fmt.Sprintf("%s must be at most %g", path, f.max))
		case f.integer && x != math.Trunc(x):
			details = append(details, path+" must be an integer")
		default:
			vals[k] = x
		}
	}
	return vals, details
}

func intPtr(vals map[string]float64, k string) *int64 {
	v, ok := vals[k]
	if !ok {
		return nil
	}
	n := int64(v)
	return &n
}

func floatPtr(vals map[string]float64, k string) *float64 {
	v, ok := vals[k]
	if !ok {
		return nil
	}
	return &v
}

// errNotFoundAlert is the 404 of an unknown alert id.
func errNotFoundAlert() *httpapi.Error {
	return httpapi.NewError(http.StatusNotFound, httpapi.CodeNotFound, "Alert not found")
}
