package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// API is the part of the DynamoDB client the limiter uses: UpdateItem only,
// never a read.
type API interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// branch is one of the two conditional writes. DynamoDB has no max(), so
// "tat = max(tat, now) + T" is split by which side of now the stored TAT lies.
type branch int

const (
	// idle: the bucket is empty or its TAT has passed (an item whose TTL has
	// not been swept yet falls here too, so expired state is never trusted):
	// SET tat = now + T IF attribute_not_exists(tat) OR tat <= now.
	idle branch = iota
	// busy: SET tat = tat + T IF tat > now AND tat <= now + tau.
	busy
)

// ErrContended means both writes lost a race to other instances; the request
// is refused (never admitted without a successful write).
var ErrContended = errors.New("rate limit bucket contended")

// dynamoBuckets decides GCRA steps on RATE_LIMITS_TABLE items {pk, tat, ttl},
// tat in epoch µs and ttl in epoch s (never earlier than tat).
type dynamoBuckets struct {
	db    API
	table string
}

// outcome is one decision made in DynamoDB and how many calls it took.
type outcome struct {
	Step
	Calls int
}

// decide runs the branch the hint suggests first; on a failed condition the
// old item (ALL_OLD) says whether to deny or to take the other branch. One
// call usually, two at most; never a read followed by a write.
func (b *dynamoBuckets) decide(ctx context.Context, pk string, p Policy, now int64, hintTAT int64) (outcome, error) {
	first := idle
	if hintTAT > now {
		first = busy
	}
	out := outcome{Step: Step{Now: now}}
	br := first
	for attempt := 0; attempt < 2; attempt++ {
		out.Calls++
		newTAT, oldTAT, hasOld, err := b.write(ctx, pk, p, now, br)
		if err == nil {
			out.Allowed, out.TAT = true, newTAT
			return out, nil
		}
		if !errors.Is(err, errConditionFailed) {
			return out, err
		}
		// The condition failed: the old item tells the truth at this instant.
		switch {
		case hasOld && oldTAT > now+p.Tau:
			out.Allowed, out.TAT = false, oldTAT
			return out, nil
		case !hasOld || oldTAT <= now:
			if br == idle {
				// Only a clock far behind another instance's gets here; refuse rather than guess.
				return out, ErrContended
			}
			br = idle
		default:
			if br == busy {
				return out, ErrContended
			}
			br = busy
		}
	}
	return out, ErrContended
}

var errConditionFailed = errors.New("condition failed")

// write performs one branch. It returns the new TAT on success, or
// errConditionFailed with the old TAT (hasOld false when there is no item or no tat).
func (b *dynamoBuckets) write(ctx context.Context, pk string, p Policy, now int64, br branch) (newTAT, oldTAT int64, hasOld bool, err error) {
	tat := expression.Name("tat")
	var cond expression.ConditionBuilder
	var upd expression.UpdateBuilder
	var ttl int64
	switch br {
	case idle:
		newTAT = now + p.T
		ttl = ceilSeconds(newTAT)
		cond = tat.AttributeNotExists().Or(tat.LessThanEqual(expression.Value(now)))
		upd = expression.Set(tat, expression.Value(newTAT))
	default:
		// The new TAT is at most now+tau+T; the TTL takes that bound, so it is
		// never earlier than the TAT it guards.
		ttl = ceilSeconds(now + p.Tau + p.T)
		cond = tat.GreaterThan(expression.Value(now)).And(tat.LessThanEqual(expression.Value(now + p.Tau)))
		upd = expression.Set(tat, tat.Plus(expression.Value(p.T)))
	}
	upd = upd.Set(expression.Name("ttl"), expression.Value(ttl))
	expr, err := expression.NewBuilder().WithCondition(cond).WithUpdate(upd).Build()
	if err != nil {
		return 0, 0, false, fmt.Errorf("build rate limit update: %w", err)
	}
	in := &dynamodb.UpdateItemInput{
		TableName:                           aws.String(b.table),
		Key:                                 map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}},
		ConditionExpression:                 expr.Condition(),
		UpdateExpression:                    expr.Update(),
		ExpressionAttributeNames:            expr.Names(),
		ExpressionAttributeValues:           expr.Values(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	if br == busy {
		in.ReturnValues = types.ReturnValueUpdatedNew
	}
	res, err := b.db.UpdateItem(ctx, in)
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			oldTAT, hasOld = tatOf(ccf.Item)
			return 0, oldTAT, hasOld, errConditionFailed
		}
		return 0, 0, false, fmt.Errorf("rate limit update: %w", err)
	}
	if br == busy {
		v, ok := tatOf(res.Attributes)
		if !ok {
			return 0, 0, false, fmt.Errorf("rate limit update: no tat returned")
		}
		newTAT = v
	}
	return newTAT, 0, false, nil
}

func tatOf(item map[string]types.AttributeValue) (int64, bool) {
	n, ok := item["tat"].(*types.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

func ceilSeconds(us int64) int64 { return (us + 999_999) / 1_000_000 }
