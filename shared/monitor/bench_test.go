package monitor_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/monitor"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// seedDense writes a counter item for every minute of [from, to) on every
// shard with every counter set (the densest data the recorder can leave:
// 1,000 to 1,500 requests a minute per shard), with four writers.
func seedDense(b *testing.B, db *dynamodb.Client, table string, shards int, from, to time.Time) {
	b.Helper()
	rnd := rand.New(rand.NewPCG(1, 1))
	var reqs []types.WriteRequest
	for m := from; m.Before(to); m = m.Add(time.Minute) {
		for s := 0; s < shards; s++ {
			r := 1000 + rnd.Int64N(500)
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("rt#%d", s)}, "sk": &types.AttributeValueMemberS{Value: metrics.MinuteKey(m)},
				"requests": store.Num(r), "admitted": store.Num(r - rnd.Int64N(50)), "errors5xx": store.Num(rnd.Int64N(20)),
				"throttled": store.Num(rnd.Int64N(50)), "slow": store.Num(rnd.Int64N(10)), "durationMs": store.Num(r * (40 + rnd.Int64N(80))),
				"failedLogins": store.Num(rnd.Int64N(3)), "ttl": store.Num(m.Add(metrics.CounterTTL).Unix()),
			}}})
		}
	}
	dynamotest.Seed(b, db, table, reqs, 4)
}

// BenchmarkMonitorReads measures what each monitor read costs on dense data:
// 168 h plus the current hour of every counter on every shard (METRIC_SHARDS=4),
// the week rolled up by the real roll-up code, through shared/dbproxy in front
// of DynamoDB Local, which reports the read units DynamoDB charged. cold is a
// new instance per read (no cache); warm is one instance read every 5 s of
// (fake) time. old/* is the read before the roll-ups (every minute item of the
// window), in the same run, for comparison.
func BenchmarkMonitorReads(b *testing.B) {
	env := dynamotest.New(b, "system-monitor", map[string]string{"DB_TIMEOUT": "60000"})
	ctx := context.Background()
	now := base.Add(37*time.Minute + 20*time.Second) // 37 minutes into the current hour
	// Traffic until an hour after now, so every minute a warm instance reads is dense too.
	seedDense(b, env.Client, env.Tables.Metrics, 4, now.Truncate(time.Hour).Add(-168*time.Hour), now.Add(time.Hour))
	fake := clock.NewFake(now)
	if r, err := newMonitor(b, env.Client, env, fake).Series().RollUp(ctx, metrics.RollupLookback, 168); err != nil || r.Missing != 0 {
		b.Fatal(r, err)
	}
	if err := metrics.NewPeaks(env.Client, env.Tables.Metrics, fake).Offer(ctx, 0.9); err != nil {
		b.Fatal(err)
	}
	p, err := dbproxy.New(env.Config.DynamoDBEndpoint)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	client := env.NewClient(b, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(p.URL()) })

	overview := func(m *monitor.Monitor) error {
		_, _, err := m.Snapshot(ctx, monitor.Want{Peak: true, Alerts: true})
		return err
	}
	health := func(m *monitor.Monitor) error {
		_, _, err := m.Snapshot(ctx, monitor.Want{Alerts: true})
		return err
	}
	history := func(hours int) func(m *monitor.Monitor) error {
		return func(m *monitor.Monitor) error {
			ms, _, err := m.History(ctx, hours)
			if err == nil && len(ms) != hours*60 {
				err = fmt.Errorf("%d points", len(ms))
			}
			return err
		}
	}
	counters := metrics.NewCounters(client, env.Tables.Metrics, 4, fake)
	raw := func(d time.Duration) func(*monitor.Monitor) error {
		return func(*monitor.Monitor) error {
			cur := fake.Now().Truncate(time.Minute)
			_, err := counters.Minutes(ctx, cur.Add(-d+time.Minute), cur.Add(time.Minute))
			return err
		}
	}
	cases := []struct {
		name string
		warm bool
		read func(*monitor.Monitor) error
	}{
		{"overview/cold", false, overview},
		{"overview/warm", true, overview},
		{"health/cold", false, health},
		{"health/warm", true, health},
		{"history-24h/cold", false, history(24)},
		{"history-24h/warm", true, history(24)},
		{"history-168h/cold", false, history(168)},
		{"history-168h/warm", true, history(168)},
		{"old/minutes-24h", false, raw(24 * time.Hour)},
		{"old/minutes-168h", false, raw(168 * time.Hour)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			fake.Set(now)
			m := newMonitor(b, client, env, fake)
			if c.warm {
				if err := c.read(m); err != nil {
					b.Fatal(err)
				}
			}
			p.Reset()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if c.warm {
					fake.Advance(5 * time.Second)
				} else {
					b.StopTimer()
					m = newMonitor(b, client, env, fake)
					b.StartTimer()
				}
				if err := c.read(m); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			s := p.Stats()
			b.ReportMetric(s.Units.Read/float64(b.N), "read-units/op")
			b.ReportMetric(s.Units.Write/float64(b.N), "write-units/op")
			b.ReportMetric(float64(s.Calls)/float64(b.N), "calls/op")
		})
	}
}
