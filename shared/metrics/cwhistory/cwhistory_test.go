package cwhistory_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"

	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/metrics/cloudwatchtest"
	"github.com/zenithfresh/zenith-serverless/shared/metrics/cwhistory"
)

var functions = []string{"auth", "session", "traffic-manager", "system-monitor"}

func newCloudWatch(url string) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	}, func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(url) })
}

func TestCloudWatchHistoryQueriesAndMapping(t *testing.T) {
	from := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	to := from.Add(time.Hour)
	srv := cloudwatchtest.NewServer(func(r cloudwatchtest.Request) ([]cloudwatchtest.Result, string) {
		if r.NextToken == "" { // first page: the request series only
			return []cloudwatchtest.Result{{
				ID: "requests", Label: "Requests",
				Timestamps: []time.Time{from.Add(5 * time.Minute), from.Add(6 * time.Minute)},
				Values:     []float64{30, 12},
			}}, "page-2"
		}
		return []cloudwatchtest.Result{
			{ID: "errors", Label: "Errors5xx", Timestamps: []time.Time{from.Add(5 * time.Minute)}, Values: []float64{3}},
			{ID: "latency", Label: "LatencyMs", Timestamps: []time.Time{from.Add(5 * time.Minute), from.Add(6 * time.Minute)}, Values: []float64{3000.4, 240}},
		}, ""
	})
	defer srv.Close()

	h := cwhistory.New(newCloudWatch(srv.URL), metrics.Namespace, functions)
	ms, err := h.Minutes(context.Background(), from, to)
	if err != nil {
		t.Fatalf("minutes: %v (server errors: %v)", err, srv.Errors())
	}

	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("calls = %d, want 2 (one page, then NextToken)", len(reqs))
	}
	if reqs[1].NextToken != "page-2" {
		t.Errorf("second call NextToken = %q", reqs[1].NextToken)
	}
	for i, r := range reqs {
		if r.Path != cloudwatchtest.Path || r.Protocol != "rpc-v2-cbor" || r.ContentType != "application/cbor" || !r.Authorization {
			t.Errorf("call %d: path %q protocol %q content-type %q signed %v", i, r.Path, r.Protocol, r.ContentType, r.Authorization)
		}
		if !r.StartTime.Equal(from) || !r.EndTime.Equal(to) {
			t.Errorf("call %d: time range %v..%v, want %v..%v", i, r.StartTime, r.EndTime, from, to)
		}
		if r.ScanBy != "TimestampAscending" {
			t.Errorf("call %d: ScanBy %q", i, r.ScanBy)
		}
		assertQueries(t, r.Queries)
	}

	want := []metrics.Minute{
		{Start: from.Add(5 * time.Minute), Counts: metrics.Counts{Requests: 30, Errors5xx: 3, DurationMs: 3000}},
		{Start: from.Add(6 * time.Minute), Counts: metrics.Counts{Requests: 12, DurationMs: 240}},
	}
	if len(ms) != len(want) {
		t.Fatalf("minutes = %+v, want %+v", ms, want)
	}
	for i := range want {
		if !ms[i].Start.Equal(want[i].Start) || ms[i].Counts != want[i].Counts {
			t.Errorf("minute %d = %+v, want %+v", i, ms[i], want[i])
		}
	}
	filled := metrics.FillMinutes(from, 60, ms)
	if len(filled) != 60 || filled[5].Requests != 30 || filled[6].Requests != 12 || filled[0].Requests != 0 || filled[59].Requests != 0 {
		t.Errorf("filled = %d points, [0]=%+v [5]=%+v [59]=%+v", len(filled), filled[0], filled[5], filled[59])
	}
}

func assertQueries(t *testing.T, qs []cloudwatchtest.Query) {
	t.Helper()
	metricsByID := map[string]string{"requests": "Requests", "errors": "Errors5xx", "latency": "LatencyMs"}
	if len(qs) != 3*(len(functions)+1) {
		t.Fatalf("queries = %d, want %d", len(qs), 3*(len(functions)+1))
	}
	seen := map[string]bool{}
	for _, q := range qs {
		seen[q.ID] = true
		if q.Expression != "" {
			name, ok := metricsByID[q.ID]
			if !ok {
				t.Errorf("unexpected expression query %+v", q)
				continue
			}
			terms := make([]string, len(functions))
			for i := range functions {
				terms[i] = fmt.Sprintf("FILL(%s_%d, 0)", q.ID, i)
			}
			if want := "SUM([" + strings.Join(terms, ", ") + "])"; q.Expression != want {
				t.Errorf("expression %s = %q, want %q", q.ID, q.Expression, want)
			}
			if q.ReturnData == nil || !*q.ReturnData || q.Period != 60 || q.Label != name {
				t.Errorf("expression %s: returnData %v period %d label %q", q.ID, q.ReturnData, q.Period, q.Label)
			}
			continue
		}
		base, idx, ok := strings.Cut(q.ID, "_")
		name := metricsByID[base]
		if !ok || name == "" {
			t.Errorf("unexpected metric query id %q", q.ID)
			continue
		}
		var i int
		fmt.Sscan(idx, &i)
		if q.Namespace != metrics.Namespace || q.MetricName != name || q.Stat != "Sum" || q.StatPeriod != 60 {
			t.Errorf("query %s: %s/%s stat %s period %d", q.ID, q.Namespace, q.MetricName, q.Stat, q.StatPeriod)
		}
		if len(q.Dimensions) != 1 || q.Dimensions["function"] != functions[i] {
			t.Errorf("query %s dimensions = %v, want function=%s", q.ID, q.Dimensions, functions[i])
		}
		if q.ReturnData == nil || *q.ReturnData {
			t.Errorf("query %s returns its raw data; only the sums should", q.ID)
		}
	}
	for id := range metricsByID {
		if !seen[id] {
			t.Errorf("missing expression %s", id)
		}
	}
}

func TestCloudWatchHistoryFailures(t *testing.T) {
	from := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		respond cloudwatchtest.Responder
	}{
		{"partial result with an internal error", func(cloudwatchtest.Request) ([]cloudwatchtest.Result, string) {
			return []cloudwatchtest.Result{{ID: "requests", StatusCode: "InternalError"}}, ""
		}},
		{"endless pagination", func(cloudwatchtest.Request) ([]cloudwatchtest.Result, string) {
			return nil, "again"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := cloudwatchtest.NewServer(tt.respond)
			defer srv.Close()
			h := cwhistory.New(newCloudWatch(srv.URL), metrics.Namespace, functions)
			if _, err := h.Minutes(context.Background(), from, from.Add(time.Hour)); err == nil {
				t.Fatal("want an error")
			}
			if n := len(srv.Requests()); n > cwhistory.MaxGetMetricDataPages {
				t.Errorf("calls = %d, over the page bound", n)
			}
		})
	}
}

func TestCloudWatchHistoryCallsFor168Hours(t *testing.T) {
	from := time.Date(2026, 11, 19, 10, 0, 0, 0, time.UTC)
	to := from.Add(168 * time.Hour)
	// A full answer: every minute of every series (3 × 10,080 points, within one call's 100,800).
	srv := cloudwatchtest.NewServer(everyMinute(1))
	defer srv.Close()
	h := cwhistory.New(newCloudWatch(srv.URL), metrics.Namespace, functions)
	ms, err := h.Minutes(context.Background(), from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 168*60 || len(srv.Requests()) != 1 {
		t.Errorf("minutes = %d, calls = %d; want 10080 minutes in 1 call", len(ms), len(srv.Requests()))
	}
}

// everyMinute answers a query with value v at every minute of its range, on
// each of the three series.
func everyMinute(v float64) func(cloudwatchtest.Request) ([]cloudwatchtest.Result, string) {
	return func(r cloudwatchtest.Request) ([]cloudwatchtest.Result, string) {
		var res []cloudwatchtest.Result
		for _, id := range []string{"requests", "errors", "latency"} {
			out := cloudwatchtest.Result{ID: id}
			for t := r.StartTime; t.Before(r.EndTime); t = t.Add(time.Minute) {
				out.Timestamps = append(out.Timestamps, t)
				out.Values = append(out.Values, v)
			}
			res = append(res, out)
		}
		return res, ""
	}
}
