package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Items are DynamoDB items by table name.
type Items map[string][]map[string]types.AttributeValue

// Keys are item keys by table name.
type Keys = map[string][]map[string]types.AttributeValue

// Find returns the item of table whose key attributes equal key's (string
// attributes, as every key here is), or nil.
func (it Items) Find(table string, key map[string]types.AttributeValue) map[string]types.AttributeValue {
	for _, item := range it[table] {
		if sameKey(item, key) {
			return item
		}
	}
	return nil
}

func sameKey(item, key map[string]types.AttributeValue) bool {
	for name, v := range key {
		want, ok := v.(*types.AttributeValueMemberS)
		if !ok || String(item[name]) != want.Value {
			return false
		}
	}
	return len(key) > 0
}

// BatchGetAPI is the part of the client BatchGet uses.
type BatchGetAPI interface {
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

// BatchWriteAPI is the part of the client BatchWrite uses.
type BatchWriteAPI interface {
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

// batchRetries bounds how often unprocessed keys are retried before the
// store counts as unavailable; the backoff is 20 ms · attempt².
const batchRetries = 4

// BatchGet reads the keys of any tables with strong consistency, at most 100
// keys a call, retrying unprocessed keys with a short backoff. Usually one call.
func BatchGet(ctx context.Context, db BatchGetAPI, keys Keys) (Items, error) {
	type ref struct {
		table string
		key   map[string]types.AttributeValue
	}
	var all []ref
	for t, ks := range keys {
		for _, k := range ks {
			all = append(all, ref{t, k})
		}
	}
	out := Items{}
	for start := 0; start < len(all); start += 100 {
		req := map[string]types.KeysAndAttributes{}
		for _, r := range all[start:min(start+100, len(all))] {
			ka := req[r.table]
			ka.Keys = append(ka.Keys, r.key)
			ka.ConsistentRead = aws.Bool(true)
			req[r.table] = ka
		}
		for attempt := 0; len(req) > 0; attempt++ {
			if err := backoff(ctx, attempt); err != nil {
				return nil, fmt.Errorf("batch get: %w", err)
			}
			res, err := db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return nil, fmt.Errorf("batch get: %w", err)
			}
			for t, items := range res.Responses {
				out[t] = append(out[t], items...)
			}
			req = res.UnprocessedKeys
		}
	}
	return out, nil
}

// BatchWrite performs write requests on one table, 25 a call, retrying
// unprocessed items with a short backoff.
func BatchWrite(ctx context.Context, db BatchWriteAPI, table string, reqs []types.WriteRequest) error {
	for start := 0; start < len(reqs); start += 25 {
		pending := map[string][]types.WriteRequest{table: reqs[start:min(start+25, len(reqs))]}
		for attempt := 0; len(pending) > 0; attempt++ {
			if err := backoff(ctx, attempt); err != nil {
				return fmt.Errorf("batch write: %w", err)
			}
			out, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				return fmt.Errorf("batch write: %w", err)
			}
			pending = out.UnprocessedItems
		}
	}
	return nil
}

// backoff waits before retry attempt n (none before the first) and gives up
// with ErrUnavailable past batchRetries.
func backoff(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return nil
	}
	if attempt > batchRetries {
		return ErrUnavailable
	}
	return Sleep(ctx, time.Duration(attempt*attempt)*20*time.Millisecond)
}

// Sleep waits for d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ConditionItem returns the item a failed condition reported
// (ReturnValuesOnConditionCheckFailure ALL_OLD), or nil.
func ConditionItem(err error) map[string]types.AttributeValue {
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return ccf.Item
	}
	return nil
}

// String returns a string attribute's value, "" when absent or of another type.
func String(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

// Int returns a number attribute as int64, 0 when absent, not a number or not whole.
func Int(v types.AttributeValue) int64 {
	if n, ok := v.(*types.AttributeValueMemberN); ok {
		if i, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
			return i
		}
	}
	return 0
}

// Float returns a number attribute as float64, 0 when absent or not a finite number.
func Float(v types.AttributeValue) float64 {
	if n, ok := v.(*types.AttributeValueMemberN); ok {
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil && f-f == 0 {
			return f
		}
	}
	return 0
}

// Num renders n as a number attribute.
func Num(n int64) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
