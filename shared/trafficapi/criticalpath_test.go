package trafficapi_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/load"
)

// The front door's load refresh (the minute counters, at most every 2 s)
// runs alongside its limiter decision: both cost one round trip.
func TestFrontDoorReadsTheLoadAlongsideTheLimiter(t *testing.T) {
	env := dynamotest.New(t, "traffic-manager", map[string]string{"METRICS_FLUSH_INTERVAL": "0"})
	fake := clock.NewFake(apitest.Epoch.Add(12 * time.Hour))
	limits, metricsTable := env.Tables.RateLimits, env.Tables.Metrics
	z := &apitest.Rendezvous{
		A: func(in any) bool {
			q, ok := in.(*dynamodb.QueryInput)
			return ok && aws.ToString(q.TableName) == metricsTable
		},
		B: func(in any) bool {
			u, ok := in.(*dynamodb.UpdateItemInput)
			return ok && aws.ToString(u.TableName) == limits
		},
	}
	a := newApp(t, env, appOpts{clock: fake, db: []func(*dynamodb.Options){z.Option()}})
	for i := 0; i < 3; i++ {
		fake.Advance(load.CacheFor) // the cached load is stale: this request refreshes it
		z.Arm()
		if res := a.do("GET", from("203.0.113.50")); res.Status != 200 {
			t.Fatalf("front door %d: %d %s", i, res.Status, res.Raw)
		}
	}
	z.Disarm()
	if n := z.Missed(); n != 0 {
		t.Fatalf("%d times the load read and the limiter write did not overlap", n)
	}
}
