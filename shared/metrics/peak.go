package metrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// PeakWindow is the period peakLoad covers, kept as one item per hour.
const PeakWindow = 24 * time.Hour

const peakPartition = "peak"

// PeakAPI is the part of the DynamoDB client the peak store uses.
type PeakAPI interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Peaks keeps the highest load seen per hour in METRICS_TABLE (pk "peak",
// sk = the hour's epoch seconds), raised only by a conditional update
// (attribute_not_exists(peak) OR peak < :v), so concurrent instances never
// lower it, and reads the 24 h peak as the maximum of the last 24 hours.
type Peaks struct {
	db    PeakAPI
	table string
	clock clock.Clock
}

// NewPeaks returns the peak store.
func NewPeaks(db PeakAPI, table string, c clock.Clock) *Peaks {
	return &Peaks{db: db, table: table, clock: c}
}

// PeakReading is what the peak store holds for the last 24 hours.
type PeakReading struct {
	Max  float64 // the highest stored peak of the 24 hour items, the current hour's included
	Hour float64 // the current hour's stored peak (0 when none)
}

// Observe records load as a candidate peak of the current hour and returns
// the peak of the last 24 hours (load included). Its two calls, the
// conditional update and the Query, run concurrently: one round trip.
func (p *Peaks) Observe(ctx context.Context, load float64) (float64, error) {
	load = cleanLoad(load)
	var (
		reading        PeakReading
		offErr, getErr error
		wg             sync.WaitGroup
	)
	wg.Go(func() { offErr = p.Offer(ctx, load) })
	wg.Go(func() { reading, getErr = p.Read(ctx) })
	wg.Wait()
	if err := errors.Join(offErr, getErr); err != nil {
		return 0, err
	}
	return math.Max(load, reading.Max), nil
}

func cleanLoad(load float64) float64 {
	if math.IsNaN(load) || load < 0 {
		return 0
	}
	return load
}

// Offer raises the current hour's peak to load if it is higher, with one
// conditional update (attribute_not_exists(peak) OR peak < :v); a lower load
// changes nothing and is not an error. A reader that already knows the hour's
// stored peak (Read) offers only a higher load, so most reads write nothing.
func (p *Peaks) Offer(ctx context.Context, load float64) error {
	load = cleanLoad(load)
	now := p.clock.Now()
	hour := now.Truncate(time.Hour)
	v := expression.Value(load)
	cond := expression.AttributeNotExists(expression.Name("peak")).Or(expression.Name("peak").LessThan(v))
	upd := expression.Set(expression.Name("peak"), v).
		Set(expression.Name("at"), expression.Value(now.UnixMilli())).
		Set(expression.Name("ttl"), expression.Value(hour.Add(PeakWindow+time.Hour).Unix()))
	expr, err := expression.NewBuilder().WithCondition(cond).WithUpdate(upd).Build()
	if err != nil {
		return fmt.Errorf("build peak update: %w", err)
	}
	_, err = p.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(p.table),
		Key:                       peakKey(hour),
		ConditionExpression:       expr.Condition(),
		UpdateExpression:          expr.Update(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	if err != nil && !store.IsConditionFailed(err) {
		return fmt.Errorf("update peak load: %w", err)
	}
	return nil
}

// Read returns the stored peaks of the last 24 hour items (the current hour
// included), with one Query.
func (p *Peaks) Read(ctx context.Context) (PeakReading, error) {
	now := p.clock.Now()
	hour := now.Truncate(time.Hour)
	keyCond := expression.Key("pk").Equal(expression.Value(peakPartition)).
		And(expression.Key("sk").Between(expression.Value(MinuteKey(hour.Add(-PeakWindow+time.Hour))), expression.Value(MinuteKey(hour))))
	qexpr, err := expression.NewBuilder().WithKeyCondition(keyCond).Build()
	if err != nil {
		return PeakReading{}, fmt.Errorf("build peak query: %w", err)
	}
	out, err := p.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(p.table),
		KeyConditionExpression:    qexpr.KeyCondition(),
		ExpressionAttributeNames:  qexpr.Names(),
		ExpressionAttributeValues: qexpr.Values(),
	})
	if err != nil {
		return PeakReading{}, fmt.Errorf("query peak load: %w", err)
	}
	var r PeakReading
	current := MinuteKey(hour)
	for _, item := range out.Items {
		if store.Int(item["ttl"]) <= now.Unix() { // TTL deletion lags; expiry is checked here
			continue
		}
		v := store.Float(item["peak"])
		r.Max = math.Max(r.Max, v)
		if store.String(item["sk"]) == current {
			r.Hour = v
		}
	}
	return r, nil
}

func peakKey(hour time.Time) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: peakPartition},
		"sk": &types.AttributeValueMemberS{Value: MinuteKey(hour)},
	}
}
