package metrics_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// BenchmarkRecorder measures what recording adds to one request: DynamoDB
// writes per request and the latency of Record (p50/p99 over b.N calls),
// with the counters on DynamoDB Local and with METRICS_REALTIME=off (EMF only).
func BenchmarkRecorder(b *testing.B) {
	for _, mode := range []string{"dynamodb", "off"} {
		b.Run("realtime="+mode, func(b *testing.B) {
			var calls store.CallCounter
			env := dynamotest.New(b, "auth", map[string]string{"METRICS_REALTIME": mode}, calls.Option())
			rec := metrics.NewRecorder(platform.RecorderSettings(env.Config), env.Client, clock.System{}, io.Discard, nil)
			ctx := context.Background()
			o := metrics.Observation{Function: "auth", Route: "/api/auth", Method: "POST", Status: 200, Duration: 12 * time.Millisecond}
			lat := make([]time.Duration, 0, b.N)
			calls.Reset()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				o.At = time.Now()
				start := time.Now()
				rec.Record(ctx, o)
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(calls.Count("UpdateItem"))/float64(b.N), "writes/req")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkHistoryCalls counts the calls one 168 h history read makes from
// each source, with every minute of the week holding traffic.
func BenchmarkHistoryCalls(b *testing.B) {
	end := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	from := end.Add(-168 * time.Hour)
	ctx := context.Background()
	for _, shards := range []int{1, 4} {
		b.Run(fmt.Sprintf("dynamodb/shards=%d", shards), func(b *testing.B) {
			var calls store.CallCounter
			env := dynamotest.New(b, "system-monitor", map[string]string{"DB_TIMEOUT": "60000"}, calls.Option()) // the emulator is slow on 1 MB pages
			writeDenseWeek(b, env.Client, env.Tables.Metrics, from, shards)
			c := metrics.NewCounters(env.Client, env.Tables.Metrics, shards, clock.System{})
			calls.Reset()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ms, err := c.Minutes(ctx, from, end)
				if err != nil || len(ms) != 168*60 {
					b.Fatalf("%d minutes, %v", len(ms), err)
				}
			}
			b.ReportMetric(float64(calls.Count("Query"))/float64(b.N), "calls/read")
		})
	}
}

// writeDenseWeek writes a counter item for every minute of the week on each
// shard, shaped as the recorder writes them (all six counters).
func writeDenseWeek(b *testing.B, db *dynamodb.Client, table string, from time.Time, shards int) {
	b.Helper()
	var batch []types.WriteRequest
	flush := func() {
		for len(batch) > 0 {
			out, err := db.BatchWriteItem(context.Background(), &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: batch}})
			if err != nil {
				b.Fatal(err)
			}
			batch = out.UnprocessedItems[table]
		}
	}
	n := func(v int) types.AttributeValue { return &types.AttributeValueMemberN{Value: fmt.Sprint(v)} }
	for s := 0; s < shards; s++ {
		for i := 0; i < 168*60; i++ {
			m := from.Add(time.Duration(i) * time.Minute)
			batch = append(batch, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("rt#%d", s)}, "sk": &types.AttributeValueMemberS{Value: metrics.MinuteKey(m)},
				"requests": n(1234), "errors5xx": n(12), "throttled": n(34), "slow": n(5), "durationMs": n(123456), "failedLogins": n(2),
				"ttl": n(int(m.Add(metrics.CounterTTL).Unix())),
			}}})
			if len(batch) == 25 {
				flush()
			}
		}
	}
	flush()
}
