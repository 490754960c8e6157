package metrics

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// RollupPartition is the pk of the hourly roll-ups in METRICS_TABLE (sk = the
// hour's MinuteKey). The measured counters live under "rt#<shard>", peaks
// under "peak", so no other read ever sees a roll-up.
const RollupPartition = "hour"

// SettleAfter is how long after a minute ends its counters are taken as
// final: recorders write a minute's counts up to a flush interval (1 s by
// default) plus one bounded write (at most 1 s) after it ends, and an
// eventually consistent read lags a write by well under a second. A minute
// is cached per instance, and an hour rolled up, only this long after it
// ended; counts written later still reach the raw counters but neither a
// roll-up nor an instance's cache (docs/monitoring.md).
const SettleAfter = 30 * time.Second

// RollupTTL is how long a roll-up lives: as long as the minutes it sums.
const RollupTTL = CounterTTL

// MinuteSums are the counters of one minute a roll-up keeps per minute: what
// the history points and the 24 h totals need. The others (admitted, slow,
// failed logins) are kept as hour totals only: the figures read them for the
// last complete and the current minute, which are never rolled up yet.
type MinuteSums struct {
	Requests, Errors5xx, Throttled, DurationMs int64
}

// Counts returns the minute as Counts (the fields a roll-up does not keep per
// minute are zero).
func (m MinuteSums) Counts() Counts {
	return Counts{Requests: m.Requests, Errors5xx: m.Errors5xx, Throttled: m.Throttled, DurationMs: m.DurationMs}
}

// Rollup is one completed hour of minute counters, summed over shards.
type Rollup struct {
	Hour    time.Time
	Totals  Counts         // every counter, summed over the hour
	Minutes [60]MinuteSums // per minute, from the hour's start
}

// BuildRollup sums the minutes of ms that lie in hour (others are ignored).
func BuildRollup(hour time.Time, ms []Minute) Rollup {
	hour = hour.Truncate(time.Hour).UTC()
	r := Rollup{Hour: hour}
	for _, m := range ms {
		if m.Start.Before(hour) || !m.Start.Before(hour.Add(time.Hour)) {
			continue
		}
		i := int(m.Start.Sub(hour) / time.Minute)
		r.Totals = r.Totals.Plus(m.Counts)
		s := &r.Minutes[i]
		s.Requests += m.Requests
		s.Errors5xx += m.Errors5xx
		s.Throttled += m.Throttled
		s.DurationMs += m.DurationMs
	}
	return r
}

// packVersion is the first byte of a packed minute series.
const packVersion = 1

// packMinutes encodes the per-minute sums compactly (read units are charged
// on the whole item, so the item is kept small): a version byte, then for
// each minute up to the last non-empty one four unsigned varints (requests,
// errors5xx, throttled, durationMs). About 8 bytes a minute at thousands of
// requests a minute, under 500 bytes an hour.
func packMinutes(ms *[60]MinuteSums) []byte {
	n := len(ms)
	for n > 0 && ms[n-1] == (MinuteSums{}) {
		n--
	}
	b := make([]byte, 1, 1+n*8)
	b[0] = packVersion
	for i := 0; i < n; i++ {
		for _, v := range [...]int64{ms[i].Requests, ms[i].Errors5xx, ms[i].Throttled, ms[i].DurationMs} {
			b = binary.AppendUvarint(b, uint64(max(v, 0))) // counters only ever grow from 0
		}
	}
	return b
}

var errBadPack = errors.New("malformed packed minutes")

// unpackMinutes decodes packMinutes' encoding.
func unpackMinutes(b []byte) ([60]MinuteSums, error) {
	var out [60]MinuteSums
	if len(b) == 0 || b[0] != packVersion {
		return out, errBadPack
	}
	b = b[1:]
	next := func() (int64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 || v > 1<<62 {
			return 0, false
		}
		b = b[n:]
		return int64(v), true
	}
	for i := 0; len(b) > 0; i++ {
		if i == len(out) {
			return out, errBadPack
		}
		var vals [4]int64
		for j := range vals {
			v, ok := next()
			if !ok {
				return out, errBadPack
			}
			vals[j] = v
		}
		out[i] = MinuteSums{Requests: vals[0], Errors5xx: vals[1], Throttled: vals[2], DurationMs: vals[3]}
	}
	return out, nil
}

// RollupAPI is the part of the DynamoDB client the roll-up store uses.
type RollupAPI interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Rollups stores the hourly roll-ups in METRICS_TABLE: pk "hour", sk = the
// hour's MinuteKey, the hour totals as numbers (requests, admitted,
// errors5xx, throttled, slow, durationMs, failedLogins), the packed minutes
// as the Binary "minutes", and ttl.
type Rollups struct {
	db    RollupAPI
	table string
	clock clock.Clock
}

// NewRollups returns the roll-up store.
func NewRollups(db RollupAPI, table string, c clock.Clock) *Rollups {
	return &Rollups{db: db, table: table, clock: c}
}

func rollupKey(hour time.Time) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: RollupPartition},
		"sk": &types.AttributeValueMemberS{Value: MinuteKey(hour)},
	}
}

// Put writes r unless its hour already has a roll-up (condition
// attribute_not_exists(pk)): however many evaluations roll up the same hour,
// the first write stands and nothing is ever added twice. It returns the
// roll-up stored for the hour (r, or the one that was there; nil when that
// one is unreadable) and whether this call wrote it.
func (s *Rollups) Put(ctx context.Context, r Rollup) (*Rollup, bool, error) {
	item := rollupKey(r.Hour)
	t := r.Totals
	for name, v := range map[string]int64{
		"requests": t.Requests, "admitted": t.Admitted, "errors5xx": t.Errors5xx, "throttled": t.Throttled,
		"slow": t.Slow, "durationMs": t.DurationMs, "failedLogins": t.FailedLogins,
		"ttl": r.Hour.Add(RollupTTL).Unix(), "writtenAt": s.clock.Now().UnixMilli(),
	} {
		item[name] = store.Num(v)
	}
	item["minutes"] = &types.AttributeValueMemberB{Value: packMinutes(&r.Minutes)}
	expr, err := expression.NewBuilder().WithCondition(expression.AttributeNotExists(expression.Name("pk"))).Build()
	if err != nil {
		return nil, false, fmt.Errorf("build roll-up condition: %w", err)
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           aws.String(s.table),
		Item:                                item,
		ConditionExpression:                 expr.Condition(),
		ExpressionAttributeNames:            expr.Names(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		return &r, true, nil
	}
	if !store.IsConditionFailed(err) {
		return nil, false, fmt.Errorf("put roll-up %s: %w", MinuteKey(r.Hour), err)
	}
	if stored, err := decodeRollup(store.ConditionItem(err)); err == nil {
		return &stored, false, nil
	}
	return nil, false, nil
}

// Range returns the roll-ups of the hours first..last (inclusive), keyed by
// the hour's epoch seconds, with one eventually consistent Query (a roll-up
// never changes once written). An unreadable or expired item is left out, so
// its hour counts as missing.
func (s *Rollups) Range(ctx context.Context, first, last time.Time) (map[int64]*Rollup, error) {
	keyCond := expression.Key("pk").Equal(expression.Value(RollupPartition)).
		And(expression.Key("sk").Between(expression.Value(MinuteKey(first.Truncate(time.Hour))), expression.Value(MinuteKey(last.Truncate(time.Hour)))))
	expr, err := expression.NewBuilder().WithKeyCondition(keyCond).Build()
	if err != nil {
		return nil, fmt.Errorf("build roll-up query: %w", err)
	}
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    expr.KeyCondition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	now := s.clock.Now().Unix()
	out := map[int64]*Rollup{}
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("query roll-ups: %w", err)
		}
		for _, item := range page.Items {
			if store.Int(item["ttl"]) <= now { // TTL deletion lags; expiry is checked here
				continue
			}
			r, err := decodeRollup(item)
			if err != nil {
				continue
			}
			out[r.Hour.Unix()] = &r
		}
	}
	return out, nil
}

func decodeRollup(item map[string]types.AttributeValue) (Rollup, error) {
	sec, err := strconv.ParseInt(store.String(item["sk"]), 10, 64)
	if err != nil || sec%3600 != 0 {
		return Rollup{}, fmt.Errorf("roll-up key %q: %w", store.String(item["sk"]), errBadPack)
	}
	b, ok := item["minutes"].(*types.AttributeValueMemberB)
	if !ok {
		return Rollup{}, errBadPack
	}
	ms, err := unpackMinutes(b.Value)
	if err != nil {
		return Rollup{}, err
	}
	return Rollup{
		Hour: time.Unix(sec, 0).UTC(),
		Totals: Counts{
			Requests: store.Int(item["requests"]), Admitted: store.Int(item["admitted"]), Errors5xx: store.Int(item["errors5xx"]),
			Throttled: store.Int(item["throttled"]), Slow: store.Int(item["slow"]),
			DurationMs: store.Int(item["durationMs"]), FailedLogins: store.Int(item["failedLogins"]),
		},
		Minutes: ms,
	}, nil
}
