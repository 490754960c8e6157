package metrics

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/store"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
)

// CounterTTL is how long minute counters live: a little over the 7 days of history.
const CounterTTL = 7*24*time.Hour + 2*time.Hour

// Counts are the per-minute counters every function adds to.
type Counts struct {
	Requests     int64 // every finished request (the monitor's totals)
	Admitted     int64 // requests that spent quota under a limiter policy and were let through (the load's numerator)
	Errors5xx    int64 // failed: status >= 500 and not throttled (see Classify)
	Throttled    int64 // status 429, or code RATE_LIMIT whatever the status (see Classify)
	Slow         int64 // duration over SLOW_QUERY_MS
	DurationMs   int64 // summed duration, for the mean
	FailedLogins int64 // security events fed by the identity code
}

// Plus returns the element-wise sum.
func (c Counts) Plus(o Counts) Counts {
	return Counts{
		Requests: c.Requests + o.Requests, Admitted: c.Admitted + o.Admitted, Errors5xx: c.Errors5xx + o.Errors5xx,
		Throttled: c.Throttled + o.Throttled, Slow: c.Slow + o.Slow,
		DurationMs: c.DurationMs + o.DurationMs, FailedLogins: c.FailedLogins + o.FailedLogins,
	}
}

// Minute is the counters of one minute, summed over shards.
type Minute struct {
	Start time.Time
	Counts
}

// CounterAPI is the part of the DynamoDB client the counters use.
type CounterAPI interface {
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Counters stores per-minute counters in METRICS_TABLE, spread over shards
// (pk "rt#<shard>", sk = the minute's epoch seconds, zero padded) so a busy
// minute is not one hot item, and a long history is one Query per shard.
type Counters struct {
	db     CounterAPI
	table  string
	shards int
	clock  clock.Clock
}

// NewCounters returns the counter store.
func NewCounters(db CounterAPI, table string, shards int, c clock.Clock) *Counters {
	if shards < 1 {
		shards = 1
	}
	return &Counters{db: db, table: table, shards: shards, clock: c}
}

// Shards returns the shard count.
func (s *Counters) Shards() int { return s.shards }

// MinuteKey renders a minute's sort key.
func MinuteKey(t time.Time) string {
	return fmt.Sprintf("%012d", t.Truncate(time.Minute).Unix())
}

func shardKey(i int) string { return "rt#" + strconv.Itoa(i) }

// Add adds delta to the counters of the minute holding at, on a random
// shard, in one write (see write). The SDK may retry it: the retry carries
// the same ClientRequestToken, so it is never applied twice.
func (s *Counters) Add(ctx context.Context, at time.Time, delta Counts) error {
	return s.write(ctx, s.newBatch(at, delta, s.clock.Now()))
}

// batch is one write of counts to one minute's counters. Its shard and
// token are fixed when it is built, so that writing it again after an
// unknown outcome (a cut connection, a timeout, a 5xx) is a no-op when the
// first write was applied: DynamoDB answers a TransactWriteItems whose
// ClientRequestToken it has seen in the last ten minutes without applying
// it again.
type batch struct {
	minute time.Time
	shard  int
	counts Counts
	token  string
	first  time.Time // when it was built (the recorder's clock)
	sent   bool      // written at least once with an unknown outcome
}

func (s *Counters) newBatch(at time.Time, counts Counts, now time.Time) batch {
	return batch{minute: at.Truncate(time.Minute), shard: rand.IntN(s.shards), counts: counts, token: crand.Text(), first: now}
}

// write applies b with one TransactWriteItems of a single atomic Update
// (ADD), for its idempotency token: it costs two write units per KB instead
// of one (docs/monitoring.md).
func (s *Counters) write(ctx context.Context, b batch) error {
	upd := expression.Set(expression.Name("ttl"), expression.Value(b.minute.Add(CounterTTL).Unix()))
	add := func(name string, v int64) {
		if v != 0 {
			upd = upd.Add(expression.Name(name), expression.Value(v))
		}
	}
	add("requests", b.counts.Requests)
	add("admitted", b.counts.Admitted)
	add("errors5xx", b.counts.Errors5xx)
	add("throttled", b.counts.Throttled)
	add("slow", b.counts.Slow)
	add("durationMs", b.counts.DurationMs)
	add("failedLogins", b.counts.FailedLogins)
	expr, err := expression.NewBuilder().WithUpdate(upd).Build()
	if err != nil {
		return fmt.Errorf("build counter update: %w", err)
	}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		ClientRequestToken: aws.String(b.token),
		TransactItems: []types.TransactWriteItem{{Update: &types.Update{
			TableName: aws.String(s.table),
			Key: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: shardKey(b.shard)},
				"sk": &types.AttributeValueMemberS{Value: MinuteKey(b.minute)},
			},
			UpdateExpression:          expr.Update(),
			ExpressionAttributeNames:  expr.Names(),
			ExpressionAttributeValues: expr.Values(),
		}}},
	})
	if err != nil {
		return fmt.Errorf("add minute counters: %w", err)
	}
	return nil
}

// Minutes returns the counters of every minute in [from, to) that has any,
// summed over shards, in time order. It makes one paginated Query per shard;
// the shards are read concurrently (at most maxShardReads at a time), so a
// long window costs about one page's latency, not one per shard.
func (s *Counters) Minutes(ctx context.Context, from, to time.Time) ([]Minute, error) {
	return s.minutes(ctx, from, to, false)
}

// MinutesConsistent is Minutes with strongly consistent reads (twice the read
// units), for the hourly roll-up, which is written once and never corrected.
func (s *Counters) MinutesConsistent(ctx context.Context, from, to time.Time) ([]Minute, error) {
	return s.minutes(ctx, from, to, true)
}

func (s *Counters) minutes(ctx context.Context, from, to time.Time, consistent bool) ([]Minute, error) {
	from, to = from.Truncate(time.Minute), to.Truncate(time.Minute)
	if !to.After(from) {
		return nil, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		byMinute = map[int64]Counts{}
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, maxShardReads)
	)
	for shard := 0; shard < s.shards; shard++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			counts, err := s.queryShard(ctx, shard, from, to, consistent)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				return
			}
			for sec, c := range counts {
				byMinute[sec] = byMinute[sec].Plus(c)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	out := make([]Minute, 0, len(byMinute))
	for t := from; t.Before(to); t = t.Add(time.Minute) {
		if c, ok := byMinute[t.Unix()]; ok {
			out = append(out, Minute{Start: t.UTC(), Counts: c})
		}
	}
	return out, nil
}

// maxShardReads bounds the concurrent shard Queries of one Minutes call.
const maxShardReads = 8

// queryShard reads one shard's minutes in [from, to), following pages.
func (s *Counters) queryShard(ctx context.Context, shard int, from, to time.Time, consistent bool) (map[int64]Counts, error) {
	keyCond := expression.Key("pk").Equal(expression.Value(shardKey(shard))).
		And(expression.Key("sk").Between(expression.Value(MinuteKey(from)), expression.Value(MinuteKey(to.Add(-time.Minute)))))
	expr, err := expression.NewBuilder().WithKeyCondition(keyCond).Build()
	if err != nil {
		return nil, fmt.Errorf("build counter query: %w", err)
	}
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    expr.KeyCondition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		ConsistentRead:            aws.Bool(consistent),
	})
	out := map[int64]Counts{}
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("query minute counters: %w", err)
		}
		for _, item := range page.Items {
			sec, err := strconv.ParseInt(store.String(item["sk"]), 10, 64)
			if err != nil {
				continue
			}
			out[sec] = out[sec].Plus(Counts{
				Requests: store.Int(item["requests"]), Admitted: store.Int(item["admitted"]), Errors5xx: store.Int(item["errors5xx"]),
				Throttled: store.Int(item["throttled"]), Slow: store.Int(item["slow"]),
				DurationMs: store.Int(item["durationMs"]), FailedLogins: store.Int(item["failedLogins"]),
			})
		}
	}
	return out, nil
}

// Sum returns the counters of [from, to) summed over minutes and shards.
func (s *Counters) Sum(ctx context.Context, from, to time.Time) (Counts, error) {
	ms, err := s.Minutes(ctx, from, to)
	if err != nil {
		return Counts{}, err
	}
	var total Counts
	for _, m := range ms {
		total = total.Plus(m.Counts)
	}
	return total, nil
}

// FillMinutes returns the n minutes starting at from, taking counts from ms
// and zero for minutes without traffic.
func FillMinutes(from time.Time, n int, ms []Minute) []Minute {
	from = from.Truncate(time.Minute)
	byMinute := make(map[int64]Counts, len(ms))
	for _, m := range ms {
		k := m.Start.Unix()
		byMinute[k] = byMinute[k].Plus(m.Counts)
	}
	out := make([]Minute, n)
	for i := range out {
		t := from.Add(time.Duration(i) * time.Minute)
		out[i] = Minute{Start: t.UTC(), Counts: byMinute[t.Unix()]}
	}
	return out
}
