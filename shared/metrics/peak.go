package metrics

import (
	"context"
	"fmt"
	"math"
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

// Observe records load as a candidate peak of the current hour and returns
// the peak of the last 24 hours (load included). Two calls: the conditional
// update (whose failure returns the stored value) and one Query.
func (p *Peaks) Observe(ctx context.Context, load float64) (float64, error) {
	if math.IsNaN(load) || load < 0 {
		load = 0
	}
	now := p.clock.Now()
	hour := now.Truncate(time.Hour)
	v := expression.Value(load)
	cond := expression.AttributeNotExists(expression.Name("peak")).Or(expression.Name("peak").LessThan(v))
	upd := expression.Set(expression.Name("peak"), v).
		Set(expression.Name("at"), expression.Value(now.UnixMilli())).
		Set(expression.Name("ttl"), expression.Value(hour.Add(PeakWindow+time.Hour).Unix()))
	expr, err := expression.NewBuilder().WithCondition(cond).WithUpdate(upd).Build()
	if err != nil {
		return 0, fmt.Errorf("build peak update: %w", err)
	}
	hourPeak := load
	_, err = p.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(p.table),
		Key:                                 peakKey(hour),
		ConditionExpression:                 expr.Condition(),
		UpdateExpression:                    expr.Update(),
		ExpressionAttributeNames:            expr.Names(),
		ExpressionAttributeValues:           expr.Values(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		if !store.IsConditionFailed(err) {
			return 0, fmt.Errorf("update peak load: %w", err)
		}
		hourPeak = math.Max(load, store.Float(store.ConditionItem(err)["peak"]))
	}

	keyCond := expression.Key("pk").Equal(expression.Value(peakPartition)).
		And(expression.Key("sk").Between(expression.Value(MinuteKey(hour.Add(-PeakWindow+time.Hour))), expression.Value(MinuteKey(hour.Add(-time.Hour)))))
	qexpr, err := expression.NewBuilder().WithKeyCondition(keyCond).Build()
	if err != nil {
		return 0, fmt.Errorf("build peak query: %w", err)
	}
	out, err := p.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(p.table),
		KeyConditionExpression:    qexpr.KeyCondition(),
		ExpressionAttributeNames:  qexpr.Names(),
		ExpressionAttributeValues: qexpr.Values(),
	})
	if err != nil {
		return 0, fmt.Errorf("query peak load: %w", err)
	}
	peak := hourPeak
	for _, item := range out.Items {
		if store.Int(item["ttl"]) <= now.Unix() { // TTL deletion lags; expiry is checked here
			continue
		}
		peak = math.Max(peak, store.Float(item["peak"]))
	}
	return peak, nil
}

func peakKey(hour time.Time) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: peakPartition},
		"sk": &types.AttributeValueMemberS{Value: MinuteKey(hour)},
	}
}
