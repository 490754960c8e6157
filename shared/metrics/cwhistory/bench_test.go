package cwhistory_test

import (
	"context"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/metrics/cloudwatchtest"
	"github.com/zenithfresh/zenith-serverless/shared/metrics/cwhistory"
)

// BenchmarkHistoryCalls counts the GetMetricData calls one 168 h history read
// makes, with every minute of the week holding traffic (the DynamoDB side is
// metrics' BenchmarkHistoryCalls).
func BenchmarkHistoryCalls(b *testing.B) {
	end := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	from := end.Add(-168 * time.Hour)
	ctx := context.Background()
	b.Run("cloudwatch", func(b *testing.B) {
		srv := cloudwatchtest.NewServer(everyMinute(3))
		defer srv.Close()
		h := cwhistory.New(newCloudWatch(srv.URL), metrics.Namespace, functions)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if ms, err := h.Minutes(ctx, from, end); err != nil || len(ms) != 168*60 {
				b.Fatalf("%d minutes, %v", len(ms), err)
			}
		}
		b.ReportMetric(float64(len(srv.Requests()))/float64(b.N), "calls/read")
	})
}
