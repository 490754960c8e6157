package keyring

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// RotateAPI is what Rotate needs: an operator's client (no function holds
// UpdateItem on the key item).
type RotateAPI interface {
	API
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Rotation is what Rotate did.
type Rotation struct {
	Version  uint32 // the new current version
	Previous uint32 // the version still accepted for cursors and device cookies (0: none)
}

// Rotate makes a new current key and keeps the old one as the previous
// (the one before it is dropped), conditional on the version it read, so two
// rotations at once cannot both win. With no key yet it creates version 1.
// Instances pick the new key up within RefreshAfter; rate-limit and lockout
// counters keyed by the old key are left behind (they start afresh).
func Rotate(ctx context.Context, db RotateAPI, usersTable string, clk clock.Clock, random io.Reader) (Rotation, error) {
	k := New(db, usersTable, clk, random)
	it, err := read(ctx, db, usersTable)
	if err != nil {
		return Rotation{}, err
	}
	if it == nil {
		if it, err = k.create(ctx); err != nil {
			return Rotation{}, err
		}
		return Rotation{Version: it.Version}, nil
	}
	if _, _, err := it.keys(); err != nil {
		return Rotation{}, err
	}
	secret, err := newSecret(k.random)
	if err != nil {
		return Rotation{}, err
	}
	next := it.Version + 1
	if next == 0 {
		return Rotation{}, errors.New("keyring: version space exhausted")
	}
	version := expression.Name("version")
	upd := expression.Set(expression.Name("previous"), expression.Value(it.Secret)).
		Set(expression.Name("previousVersion"), expression.Value(it.Version)).
		Set(expression.Name("secret"), expression.Value(secret)).
		Set(version, expression.Value(next)).
		Set(expression.Name("rotatedAt"), expression.Value(k.clock.Now().UnixMilli()))
	expr, err := expression.NewBuilder().WithUpdate(upd).WithCondition(version.Equal(expression.Value(it.Version))).Build()
	if err != nil {
		return Rotation{}, fmt.Errorf("build the key rotation: %w", err)
	}
	_, err = db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(usersTable), Key: itemKey(),
		UpdateExpression: expr.Update(), ConditionExpression: expr.Condition(),
		ExpressionAttributeNames: expr.Names(), ExpressionAttributeValues: expr.Values(),
	})
	if store.IsConditionFailed(err) {
		return Rotation{}, errors.New("keyring: the key was rotated concurrently; run again to rotate once more")
	}
	if err != nil {
		return Rotation{}, fmt.Errorf("rotate the deployment key: %w", err)
	}
	return Rotation{Version: next, Previous: it.Version}, nil
}
