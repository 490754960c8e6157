package metrics_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/metrics"
)

// validUnits are the CloudWatch units EMF accepts.
var validUnits = map[string]bool{
	"Seconds": true, "Microseconds": true, "Milliseconds": true, "Bytes": true, "Kilobytes": true,
	"Megabytes": true, "Gigabytes": true, "Terabytes": true, "Bits": true, "Kilobits": true,
	"Megabits": true, "Gigabits": true, "Terabits": true, "Percent": true, "Count": true,
	"Bytes/Second": true, "Kilobytes/Second": true, "Megabytes/Second": true, "Gigabytes/Second": true,
	"Terabytes/Second": true, "Bits/Second": true, "Kilobits/Second": true, "Megabits/Second": true,
	"Gigabits/Second": true, "Terabits/Second": true, "Count/Second": true, "None": true,
}

// checkEMF validates one line against the Embedded Metric Format
// specification and returns the decoded document.
func checkEMF(t *testing.T, line []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("EMF line is not a JSON object: %v: %s", err, line)
	}
	awsMeta, ok := doc["_aws"].(map[string]any)
	if !ok {
		t.Fatalf("no _aws object: %s", line)
	}
	ts, ok := awsMeta["Timestamp"].(json.Number)
	if !ok {
		t.Fatalf("_aws.Timestamp missing or not a number: %s", line)
	}
	if _, err := ts.Int64(); err != nil {
		t.Errorf("_aws.Timestamp %s is not integer epoch milliseconds", ts)
	}
	directives, ok := awsMeta["CloudWatchMetrics"].([]any)
	if !ok || len(directives) == 0 {
		t.Fatalf("_aws.CloudWatchMetrics missing or empty: %s", line)
	}
	for _, d := range directives {
		dir, ok := d.(map[string]any)
		if !ok {
			t.Fatalf("directive is not an object: %v", d)
		}
		ns, _ := dir["Namespace"].(string)
		if ns == "" || len(ns) > 255 {
			t.Errorf("bad Namespace %q", ns)
		}
		dimSets, ok := dir["Dimensions"].([]any)
		if !ok {
			t.Fatalf("Dimensions missing: %v", dir)
		}
		for _, ds := range dimSets {
			set, ok := ds.([]any)
			if !ok {
				t.Fatalf("dimension set is not an array: %v", ds)
			}
			if len(set) > metrics.MaxDimensionsPerSet {
				t.Errorf("dimension set of %d > 30", len(set))
			}
			for _, dn := range set {
				name, _ := dn.(string)
				v, ok := doc[name].(string)
				if !ok {
					t.Errorf("dimension %q has no string member in the root", name)
				}
				if v == "" || len([]rune(v)) > metrics.MaxDimensionValueLen {
					t.Errorf("dimension %q value %q out of CloudWatch's bounds", name, v)
				}
				if name == "clientId" || name == "ip" || name == "user" || name == "requestId" {
					t.Errorf("client identity %q used as a dimension", name)
				}
			}
		}
		ms, ok := dir["Metrics"].([]any)
		if !ok || len(ms) == 0 {
			t.Fatalf("Metrics missing: %v", dir)
		}
		if len(ms) > metrics.MaxMetricsPerDirective {
			t.Errorf("%d metrics > 100", len(ms))
		}
		for _, m := range ms {
			md, _ := m.(map[string]any)
			name, _ := md["Name"].(string)
			if name == "" || len(name) > 1024 {
				t.Errorf("bad metric name %q", name)
			}
			if u, ok := md["Unit"].(string); ok && !validUnits[u] {
				t.Errorf("metric %s has invalid unit %q", name, u)
			}
			if _, ok := doc[name].(json.Number); !ok {
				t.Errorf("metric %s has no numeric member in the root", name)
			}
		}
	}
	return doc
}

func TestRequestLineMatchesEMF(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 30, 0, time.UTC)
	tests := []struct {
		name              string
		route, method     string
		status            int
		code              string
		d                 time.Duration
		wantRoute         string
		errors, throttled int64
		wantLatency       string
		read, write       float64
		wantRead          string
		wantWrite         string
	}{
		{"ok", "/api/system-monitor", "GET", 200, "", 12500 * time.Microsecond, "GET /api/system-monitor", 0, 0, "12.5", 0, 0, "0", "0"},
		{"capacity units", "/api/auth", "POST", 200, "", time.Millisecond, "POST /api/auth", 0, 0, "1", 1.5, 3, "1.5", "3"},
		{"nonsense units become 0", "/api/auth", "POST", 200, "", time.Millisecond, "POST /api/auth", 0, 0, "1", math.NaN(), -1, "0", "0"},
		{"server error", "/api/auth", "POST", 503, "SERVICE_UNAVAILABLE", time.Second, "POST /api/auth", 1, 0, "1000", 0, 0, "0", "0"},
		{"overload is a failure", "/api/traffic-manager", "GET", 503, "SYS_OVERLOAD", 0, "GET /api/traffic-manager", 1, 0, "0", 0, 0, "0", "0"},
		{"throttled", "/api/traffic-manager", "GET", 429, "RATE_LIMIT", 0, "GET /api/traffic-manager", 0, 1, "0", 0, 0, "0", "0"},
		// RATE_LIMIT_STATUS=503: the same throttle, answered 503; not a failure.
		{"throttled as 503", "/api/traffic-manager", "GET", 503, "RATE_LIMIT", 0, "GET /api/traffic-manager", 0, 1, "0", 0, 0, "0", "0"},
		{"unmatched keeps the client's path and method out", "unmatched", "PROPFIND", 404, "NOT_FOUND", time.Millisecond, "unmatched", 0, 0, "1", 0, 0, "0", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := metrics.RequestLine(metrics.Observation{
				At: at, Function: "system-monitor", Route: tt.route, Method: tt.method, Status: tt.status, Code: tt.code,
				Throttled: tt.code == "RATE_LIMIT", // as the request layer sets it
				Duration:  tt.d, ReadUnits: tt.read, WriteUnits: tt.write,
			})
			if bytes.ContainsRune(line, '\n') {
				t.Fatal("an EMF line must be one line")
			}
			doc := checkEMF(t, line)
			if doc["function"] != "system-monitor" || doc["route"] != tt.wantRoute || (tt.code != "" && doc["code"] != tt.code) {
				t.Errorf("dimensions = %v / %v", doc["function"], doc["route"])
			}
			if ts, _ := doc["_aws"].(map[string]any)["Timestamp"].(json.Number).Int64(); ts != at.UnixMilli() {
				t.Errorf("Timestamp = %d, want %d", ts, at.UnixMilli())
			}
			if doc["Requests"] != json.Number("1") || doc["Errors5xx"] != json.Number(fmt.Sprint(tt.errors)) ||
				doc["Throttled"] != json.Number(fmt.Sprint(tt.throttled)) || doc["LatencyMs"] != json.Number(tt.wantLatency) {
				t.Errorf("values = %v %v %v %v", doc["Requests"], doc["Errors5xx"], doc["Throttled"], doc["LatencyMs"])
			}
			if doc["ReadUnits"] != json.Number(tt.wantRead) || doc["WriteUnits"] != json.Number(tt.wantWrite) {
				t.Errorf("units = %v %v, want %s %s", doc["ReadUnits"], doc["WriteUnits"], tt.wantRead, tt.wantWrite)
			}
			dir := doc["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
			if dir["Namespace"] != metrics.Namespace {
				t.Errorf("namespace = %v", dir["Namespace"])
			}
			if got := fmt.Sprint(dir["Dimensions"]); got != "[[function] [function route]]" {
				t.Errorf("dimension sets = %s", got)
			}
			// The capacity units are metrics of the same directive, so they
			// have the same dimension sets as the request counts.
			if got := fmt.Sprint(dir["Metrics"]); got != "[map[Name:Requests Unit:Count] map[Name:Errors5xx Unit:Count] map[Name:Throttled Unit:Count] "+
				"map[Name:LatencyMs Unit:Milliseconds] map[Name:ReadUnits Unit:None] map[Name:WriteUnits Unit:None]]" {
				t.Errorf("metrics = %s", got)
			}
		})
	}
}

func TestLongAndBlankDimensionValuesStayValid(t *testing.T) {
	long := "/api/" + strings.Repeat("é", 2000)
	line := metrics.RequestLine(metrics.Observation{At: time.Unix(0, 0), Route: long, Method: "GET", Status: 200})
	doc := checkEMF(t, line)
	if doc["function"] != "unknown" {
		t.Errorf("blank function = %v", doc["function"])
	}
	if n := len([]rune(doc["route"].(string))); n != metrics.MaxDimensionValueLen {
		t.Errorf("route length = %d", n)
	}
	invalid := metrics.RequestLine(metrics.Observation{At: time.Unix(0, 0), Function: "auth", Route: "/api/\xff", Method: "GET", Status: 200})
	checkEMF(t, invalid)
}

func TestEventLineMatchesEMF(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	doc := checkEMF(t, metrics.EventLine(at, "auth", metrics.EventFailedLogin))
	if doc["FailedLogins"] != json.Number("1") || doc["function"] != "auth" {
		t.Errorf("failed login line = %v", doc)
	}
	doc = checkEMF(t, metrics.EventLine(at, "auth", "csrf_rejected"))
	if doc["SecurityEvents"] != json.Number("1") || doc["event"] != "csrf_rejected" {
		t.Errorf("security event line = %v", doc)
	}
}

func lines(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	return out
}
