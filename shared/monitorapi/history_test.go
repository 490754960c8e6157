package monitorapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/metrics/cloudwatchtest"
	"github.com/zenithfresh/zenith-serverless/shared/monitorapi"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

type point struct {
	Timestamp           int64    `json:"timestamp"`
	RequestRate         int64    `json:"requestRate"`
	ErrorRate           float64  `json:"errorRate"`
	AverageResponseTime float64  `json:"averageResponseTime"`
	CPULoad             *float64 `json:"cpuLoad"`
	MemoryUsage         *float64 `json:"memoryUsage"`
}

type historyBody struct {
	TimeRange  string  `json:"timeRange"`
	DataPoints int     `json:"dataPoints"`
	Data       []point `json:"data"`
	Source     string  `json:"source"`
	Timestamp  int64   `json:"timestamp"`
}

func decodeHistory(t *testing.T, r apitest.Response) historyBody {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("history: %d %s", r.Status, r.Raw)
	}
	var hb historyBody
	if err := json.Unmarshal([]byte(r.Raw), &hb); err != nil {
		t.Fatal(err)
	}
	return hb
}

func checkSeries(t *testing.T, hb historyBody, hours int, end time.Time, want map[int64]point) {
	t.Helper()
	n := hours * 60
	if hb.DataPoints != n || len(hb.Data) != n {
		t.Fatalf("dataPoints %d, len %d, want %d", hb.DataPoints, len(hb.Data), n)
	}
	// Literally "<h> hour(s)", as the original (and API.md) have it.
	if hb.TimeRange != fmt.Sprintf("%d hour(s)", hours) {
		t.Errorf("timeRange = %q, want %q", hb.TimeRange, fmt.Sprintf("%d hour(s)", hours))
	}
	first := end.Add(-time.Duration(n) * time.Minute)
	for i, p := range hb.Data {
		ts := first.Add(time.Duration(i) * time.Minute).UnixMilli()
		if p.Timestamp != ts {
			t.Fatalf("point %d timestamp %d, want %d (one per minute, oldest first)", i, p.Timestamp, ts)
		}
		w := want[ts]
		w.Timestamp = ts
		if p.RequestRate != w.RequestRate || p.ErrorRate != w.ErrorRate || p.AverageResponseTime != w.AverageResponseTime || p.CPULoad != nil || p.MemoryUsage != nil {
			t.Errorf("point %d = %+v, want %+v", i, p, w)
		}
	}
}

func TestHistoryFromDynamoDB(t *testing.T) {
	h := newHarness(t, map[string]string{"METRICS_HISTORY_SOURCE": "dynamodb"})
	ctx := context.Background()
	now := minuteM.Add(7*24*time.Hour + 30*time.Second)
	end := now.Truncate(time.Minute)
	c := metrics.NewCounters(h.env.Client, h.env.Tables.Metrics, 4, h.fake)
	// Traffic 5 minutes ago, 59 minutes ago (inside 1 h), 3 h ago and 167 h ago
	// (inside 168 h), and in the current, incomplete minute (never shown).
	add := func(ago time.Duration, req, errs, dur int64) {
		for i := int64(0); i < req; i++ { // one add per request, like the recorder: spread over shards
			var e int64
			if i < errs {
				e = 1
			}
			if err := c.Add(ctx, end.Add(-ago), metrics.Counts{Requests: 1, Errors5xx: e, DurationMs: dur}); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(5*time.Minute, 8, 2, 25)
	add(59*time.Minute, 3, 0, 100)
	add(3*time.Hour, 4, 4, 10)
	add(167*time.Hour, 1, 0, 7)
	add(-30*time.Second, 50, 50, 1)
	h.fake.Set(now)

	oneHour := map[int64]point{
		end.Add(-5 * time.Minute).UnixMilli():  {RequestRate: 8, ErrorRate: 25, AverageResponseTime: 25},
		end.Add(-59 * time.Minute).UnixMilli(): {RequestRate: 3, ErrorRate: 0, AverageResponseTime: 100},
	}
	week := map[int64]point{
		end.Add(-3 * time.Hour).UnixMilli():   {RequestRate: 4, ErrorRate: 100, AverageResponseTime: 10},
		end.Add(-167 * time.Hour).UnixMilli(): {RequestRate: 1, ErrorRate: 0, AverageResponseTime: 7},
	}
	for k, v := range oneHour {
		week[k] = v
	}
	// Read by a fresh instance each time (h.calls counts only the first
	// one's client): before the schedule has rolled the hours up (every
	// settled hour read from its minutes, logged), and after.
	get := func(t *testing.T, app *httpapi.App, hours int) historyBody {
		t.Helper()
		return decodeHistory(t, call(t, app, event("GET", "/api/system-monitor", map[string]string{"endpoint": "history", "hours": fmt.Sprint(hours)}, "", h.watcher, h.seq.Add(1))))
	}
	for _, tt := range []struct {
		name    string
		rolled  bool
		hours   int
		want    map[int64]point
		queries int
	}{
		// The hour before the current one is settled but read from its
		// minutes until RollupGrace has passed: 4 Queries, either way.
		{"no roll-ups yet", false, 1, oneHour, 4},
		// The roll-ups (none found) with the last hour's minutes, then the
		// week's minutes: 1 + 4 + 4.
		{"no roll-ups yet", false, 168, week, 1 + 4 + 4},
		{"rolled up", true, 1, oneHour, 4},
		// The roll-ups of the week and the last hour's minutes, together.
		{"rolled up", true, 168, week, 1 + 4},
	} {
		t.Run(fmt.Sprintf("%s/%d hours", tt.name, tt.hours), func(t *testing.T) {
			if tt.rolled {
				if r, err := h.handler.Monitor().Series().RollUp(ctx, metrics.RollupLookback, 168); err != nil || r.Missing != 0 {
					t.Fatal(r, err)
				}
			}
			var calls store.CallCounter
			handler, err := monitorapi.NewHandler(ctx, h.newDeps(calls.Option()))
			if err != nil {
				t.Fatal(err)
			}
			hb := get(t, handler.App(), tt.hours)
			if hb.Source != "dynamodb" || hb.Timestamp != now.UnixMilli() {
				t.Errorf("source %q timestamp %d", hb.Source, hb.Timestamp)
			}
			checkSeries(t, hb, tt.hours, end, tt.want)
			// Beside the session read and the limiter (UpdateItem), only Queries.
			if got := calls.Count("Query"); got != tt.queries {
				t.Errorf("Query calls = %d, want %d (%v)", got, tt.queries, calls.Snapshot())
			}
			// The same instance again: only what is not cached (nothing here:
			// every minute of the window has settled).
			calls.Reset()
			checkSeries(t, get(t, handler.App(), tt.hours), tt.hours, end, tt.want)
			if got := calls.Count("Query"); got != 0 {
				t.Errorf("warm instance: %d Queries (%v), want 0", got, calls.Snapshot())
			}
		})
	}
}

// TestHistoryFromDynamoDBDenseWeek fills every minute of 168 h on one shard
// (10,080 items) and counts the Query pages a full week takes.
func TestHistoryFromDynamoDBDenseWeek(t *testing.T) {
	// DynamoDB Local can take seconds for a 1 MB page on a loaded machine: a
	// wider DB_TIMEOUT keeps this about the call count, not the emulator's speed.
	h := newHarness(t, map[string]string{"METRICS_HISTORY_SOURCE": "dynamodb", "METRIC_SHARDS": "1", "DB_TIMEOUT": "60000"})
	now := minuteM.Add(7*24*time.Hour + 30*time.Second)
	end := now.Truncate(time.Minute)
	from := end.Add(-168 * time.Hour)
	writeDense(t, h.env.Client, h.env.Tables.Metrics, from, 168*60, 1)
	h.fake.Set(now)
	h.calls.Reset()
	hb := decodeHistory(t, h.get(map[string]string{"endpoint": "history", "hours": "168"}, h.watcher))
	want := map[int64]point{}
	for i := 0; i < 168*60; i++ {
		want[from.Add(time.Duration(i)*time.Minute).UnixMilli()] = point{RequestRate: 10, ErrorRate: 10, AverageResponseTime: 20}
	}
	checkSeries(t, hb, 168, end, want)
	q := h.calls.Count("Query")
	if q < 1 || q > 3 {
		t.Errorf("Query pages for a dense week on one shard = %d, want 1..3", q)
	}
	t.Logf("dense 168 h on 1 shard: %d Query calls", q)
}

// writeDense writes n minutes of counters (10 requests, 1 failed, 200 ms) on
// each of shards, in 25-item batches sent by four concurrent writers.
func writeDense(t testing.TB, db *dynamodb.Client, table string, from time.Time, n, shards int) {
	t.Helper()
	var reqs []types.WriteRequest
	for s := 0; s < shards; s++ {
		for i := 0; i < n; i++ {
			m := from.Add(time.Duration(i) * time.Minute)
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
				"pk":         &types.AttributeValueMemberS{Value: fmt.Sprintf("rt#%d", s)},
				"sk":         &types.AttributeValueMemberS{Value: metrics.MinuteKey(m)},
				"requests":   &types.AttributeValueMemberN{Value: "10"},
				"errors5xx":  &types.AttributeValueMemberN{Value: "1"},
				"throttled":  &types.AttributeValueMemberN{Value: "0"},
				"slow":       &types.AttributeValueMemberN{Value: "0"},
				"durationMs": &types.AttributeValueMemberN{Value: "200"},
				"ttl":        &types.AttributeValueMemberN{Value: fmt.Sprint(m.Add(metrics.CounterTTL).Unix())},
			}}})
		}
	}
	dynamotest.Seed(t, db, table, reqs, 4)
}

func TestHistoryFromCloudWatch(t *testing.T) {
	now := minuteM.Add(3*time.Hour + 20*time.Second)
	end := now.Truncate(time.Minute)
	srv := cloudwatchtest.NewServer(func(r cloudwatchtest.Request) ([]cloudwatchtest.Result, string) {
		return []cloudwatchtest.Result{
			{ID: "requests", Timestamps: []time.Time{end.Add(-2 * time.Minute), end.Add(-100 * time.Minute)}, Values: []float64{40, 5}},
			{ID: "errors", Timestamps: []time.Time{end.Add(-2 * time.Minute)}, Values: []float64{10}},
			{ID: "latency", Timestamps: []time.Time{end.Add(-2 * time.Minute), end.Add(-100 * time.Minute)}, Values: []float64{1000, 62.5}},
		}, ""
	})
	defer srv.Close()
	h := newHarness(t, map[string]string{"METRICS_HISTORY_SOURCE": "cloudwatch"},
		monitorapi.WithCloudWatchOptions(func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(srv.URL) }))
	h.fake.Set(now)
	h.calls.Reset()
	hb := decodeHistory(t, h.get(map[string]string{"endpoint": "history", "hours": "2"}, h.watcher))
	if errs := srv.Errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
	if hb.Source != "cloudwatch" {
		t.Errorf("source = %q", hb.Source)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("GetMetricData calls = %d, want 1", len(reqs))
	}
	if !reqs[0].StartTime.Equal(end.Add(-2*time.Hour)) || !reqs[0].EndTime.Equal(end) {
		t.Errorf("time range %v..%v, want %v..%v", reqs[0].StartTime, reqs[0].EndTime, end.Add(-2*time.Hour), end)
	}
	if len(reqs[0].Queries) != 3*(len(monitorapi.Functions)+1) {
		t.Errorf("queries = %d", len(reqs[0].Queries))
	}
	if q := h.calls.Count("Query"); q != 0 {
		t.Errorf("DynamoDB queries = %d with the CloudWatch source", q)
	}
	checkSeries(t, hb, 2, end, map[int64]point{
		end.Add(-2 * time.Minute).UnixMilli():   {RequestRate: 40, ErrorRate: 25, AverageResponseTime: 25},
		end.Add(-100 * time.Minute).UnixMilli(): {RequestRate: 5, ErrorRate: 0, AverageResponseTime: 12.6},
	})
}

func TestHistoryFromCloudWatchFailureIsA5xxWithoutDetail(t *testing.T) {
	srv := cloudwatchtest.NewServer(func(r cloudwatchtest.Request) ([]cloudwatchtest.Result, string) {
		return []cloudwatchtest.Result{{ID: "requests", StatusCode: "Forbidden"}}, ""
	})
	defer srv.Close()
	h := newHarness(t, map[string]string{"METRICS_HISTORY_SOURCE": "cloudwatch"},
		monitorapi.WithCloudWatchOptions(func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(srv.URL) }))
	r := h.get(map[string]string{"endpoint": "history"}, h.watcher)
	if r.Status != 500 || r.Body["code"] != "INTERNAL_ERROR" || r.Body["error"] != "Internal server error" {
		t.Errorf("%d %s", r.Status, r.Raw)
	}
}

// TestMonitorCallsPerEndpoint pins the DynamoDB reads each endpoint makes on
// a warm instance (METRIC_SHARDS=4), as BENCHMARKS.md's critical-path and
// data-growth blocks measure them. Session and limiter calls are the identity and traffic
// code's and not counted here.
func TestMonitorCallsPerEndpoint(t *testing.T) {
	h := newHarness(t, map[string]string{"METRICS_HISTORY_SOURCE": "dynamodb"})
	now := minuteM.Add(time.Minute + 40*time.Second)
	h.fake.Set(now)
	// The schedule has run: the week is rolled up (this instance knows it).
	evaluate(t, h)
	if r, err := h.handler.Monitor().Series().RollUp(context.Background(), metrics.RollupLookback, 168); err != nil || r.Missing != 0 {
		t.Fatal(r, err)
	}
	for _, e := range []string{"overview", "health", "history"} {
		h.get(map[string]string{"endpoint": e, "hours": "168"}, h.watcher) // warm the role and series caches
	}
	wantQueries := map[string]int{
		"overview": 7, // the unsettled minutes (4 shards) + overrides + peak hours + alerts
		"metrics":  6, // 4 shards + overrides + peak hours
		"health":   6, // 4 shards + overrides + alerts
		"alerts":   1,
		"history":  4, // the minutes completed since the last read, one Query per shard, 1 h or 168 h alike
	}
	for e, want := range wantQueries {
		h.fake.Advance(time.Minute) // a new minute to read every time
		h.calls.Reset()
		if r := h.get(map[string]string{"endpoint": e, "hours": "168"}, h.watcher); r.Status != 200 {
			t.Fatalf("%s: %d %s", e, r.Status, r.Raw)
		}
		if got := h.calls.Count("Query"); got != want {
			t.Errorf("%s: %d Queries, want %d (%v)", e, got, want, h.calls.Snapshot())
		}
		// The limiter, the recorder, the session touch (a minute passed) and at most one peak update.
		if got := h.calls.Count("UpdateItem"); got > 4 {
			t.Errorf("%s: %d UpdateItems (%v)", e, got, h.calls.Snapshot())
		}
	}
	h.fake.Advance(time.Minute)
	h.calls.Reset()
	evaluate(t, h)
	// 4 shards + overrides + peak hours + rule states; no roll-up to write
	// (the instance knows the week's), at most one peak UpdateItem; no alert
	// writes when quiet.
	if got := h.calls.Snapshot(); got["Query"] != 7 || got["UpdateItem"] > 1 || got["PutItem"] != 0 || h.calls.Total() != 7+got["UpdateItem"] {
		t.Errorf("scheduled evaluation calls = %v", got)
	}
	// At the next hour's first evaluation after it settled: one more roll-up
	// (the roll-up Query, a consistent Query per shard, one PutItem).
	h.fake.Set(minuteM.Add(time.Hour + metrics.SettleAfter))
	h.calls.Reset()
	evaluate(t, h)
	if got := h.calls.Snapshot(); got["PutItem"] != 1 || got["Query"] != 7+1+4 {
		t.Errorf("evaluation after an hour settled: calls = %v", got)
	}
}
