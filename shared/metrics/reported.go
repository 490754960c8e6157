package metrics

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
)

// ReportedPartition is the pk of the reported series in METRICS_TABLE. The
// measured counters live under "rt#<shard>", so no read of measured figures
// can ever see a reported sample.
const ReportedPartition = "reported"

// ReportedTTL is how long a reported sample is kept.
const ReportedTTL = 7 * 24 * time.Hour

// ReportedRequests is the requests part of a posted sample (all optional).
type ReportedRequests struct {
	Total      *int64   `json:"total,omitempty" dynamodbav:"total,omitempty"`
	Successful *int64   `json:"successful,omitempty" dynamodbav:"successful,omitempty"`
	Failed     *int64   `json:"failed,omitempty" dynamodbav:"failed,omitempty"`
	Rate       *float64 `json:"rate,omitempty" dynamodbav:"rate,omitempty"`
}

// ReportedPerformance is the performance part of a posted sample (all optional).
type ReportedPerformance struct {
	AverageResponseTime *float64 `json:"averageResponseTime,omitempty" dynamodbav:"averageResponseTime,omitempty"`
	SlowQueries         *int64   `json:"slowQueries,omitempty" dynamodbav:"slowQueries,omitempty"`
	ErrorRate           *float64 `json:"errorRate,omitempty" dynamodbav:"errorRate,omitempty"`
	Availability        *float64 `json:"availability,omitempty" dynamodbav:"availability,omitempty"`
}

// Sample is one posted (reported, not measured) metrics sample.
type Sample struct {
	Requests    *ReportedRequests    `dynamodbav:"requests,omitempty"`
	Performance *ReportedPerformance `dynamodbav:"performance,omitempty"`
	ReportedBy  string               `dynamodbav:"reportedBy,omitempty"` // username of the caller
}

type reportedItem struct {
	PK string `dynamodbav:"pk"`
	SK string `dynamodbav:"sk"`
	Sample
	At  int64 `dynamodbav:"at"`
	TTL int64 `dynamodbav:"ttl"`
}

// PutAPI is the part of the DynamoDB client the reported series uses.
type PutAPI interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// Reported stores posted samples as their own series (pk "reported", sk =
// epoch milliseconds and a random suffix, TTL 7 days).
type Reported struct {
	db    PutAPI
	table string
	clock clock.Clock
}

// NewReported returns the reported-series store.
func NewReported(db PutAPI, table string, c clock.Clock) *Reported {
	return &Reported{db: db, table: table, clock: c}
}

// Put stores one sample with one PutItem.
func (r *Reported) Put(ctx context.Context, s Sample) error {
	now := r.clock.Now()
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	item, err := attributevalue.MarshalMap(reportedItem{
		PK:     ReportedPartition,
		SK:     fmt.Sprintf("%013d#%s", now.UnixMilli(), hex.EncodeToString(suffix[:])),
		Sample: s,
		At:     now.UnixMilli(),
		TTL:    now.Add(ReportedTTL).Unix(),
	})
	if err != nil {
		return fmt.Errorf("marshal reported sample: %w", err)
	}
	if _, err := r.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(r.table), Item: item}); err != nil {
		return fmt.Errorf("put reported sample: %w", err)
	}
	return nil
}
