package metrics_test

import (
	"context"
	"fmt"
	"io"
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

// BenchmarkRecorder measures what recording adds to one request, run as the
// request layer runs it (Start, wait, Record): DynamoDB writes per request and
// allocations per request, with METRICS_FLUSH_INTERVAL=0 (one write per
// request), 1000 ms (one write per interval and minute) and
// METRICS_REALTIME=off (EMF only), on DynamoDB Local. The fake clock advances
// 5 ms per request (200 requests/s), so writes/req is a count, not a timing:
//
//	./bin/withdynamo -- go test -run '^$' -bench Recorder -benchtime 10000x ./shared/metrics
func BenchmarkRecorder(b *testing.B) {
	modes := []struct{ name, realtime, interval string }{
		{"interval=0", "dynamodb", "0"},
		{"interval=1000ms", "dynamodb", "1000"},
		{"realtime=off", "off", "1000"},
	}
	for _, mode := range modes {
		b.Run(mode.name, func(b *testing.B) {
			var calls store.CallCounter
			env := dynamotest.New(b, "auth", map[string]string{"METRICS_REALTIME": mode.realtime, "METRICS_FLUSH_INTERVAL": mode.interval}, calls.Option())
			fake := clock.NewFake(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
			rec := metrics.NewRecorder(platform.RecorderSettings(env.Config), env.Client, fake, io.Discard, nil)
			ctx := context.Background()
			o := metrics.Observation{Function: "auth", Route: "/api/auth", Method: "POST", Status: 200, Duration: 12 * time.Millisecond}
			calls.Reset()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				wait := rec.Start(ctx)
				wait()
				o.At = fake.Now()
				rec.Record(ctx, o)
				fake.Advance(5 * time.Millisecond)
			}
			b.StopTimer()
			if err := rec.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(calls.Count("TransactWriteItems"))/float64(b.N), "writes/req")
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
	n := func(v int) types.AttributeValue { return &types.AttributeValueMemberN{Value: fmt.Sprint(v)} }
	var reqs []types.WriteRequest
	for s := 0; s < shards; s++ {
		for i := 0; i < 168*60; i++ {
			m := from.Add(time.Duration(i) * time.Minute)
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("rt#%d", s)}, "sk": &types.AttributeValueMemberS{Value: metrics.MinuteKey(m)},
				"requests": n(1234), "errors5xx": n(12), "throttled": n(34), "slow": n(5), "durationMs": n(123456), "failedLogins": n(2),
				"ttl": n(int(m.Add(metrics.CounterTTL).Unix())),
			}}})
		}
	}
	dynamotest.Seed(b, db, table, reqs, 4)
}
