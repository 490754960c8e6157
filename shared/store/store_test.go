package store_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

func client(t *testing.T, endpoint, timeoutMs string) *dynamodb.Client {
	t.Helper()
	cfg, err := config.Load("test", func(k string) string {
		return map[string]string{"DYNAMODB_ENDPOINT": endpoint, "DB_TIMEOUT": timeoutMs, "AWS_REGION": "us-east-1"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	ac, err := store.LoadAWS(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return store.NewDynamoDB(ac, cfg)
}

func TestUnreachableStoreIsUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	_, err = client(t, "http://"+addr, "300").GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String("x"), Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "k"}},
	})
	if err == nil || !store.IsUnavailable(err) {
		t.Fatalf("err = %v, want unavailable", err)
	}
}

func TestHangingStoreIsBoundedByDBTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	_, err := client(t, srv.URL, "200").GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String("x"), Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "k"}},
	})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !store.IsUnavailable(err) {
		t.Fatalf("err = %v, want deadline exceeded (DB_TIMEOUT)", err)
	}
}

func TestConditionFailedAndCallCounter(t *testing.T) {
	var calls store.CallCounter
	env := dynamotest.New(t, "test", nil, calls.Option())
	ctx := context.Background()
	put := &dynamodb.PutItemInput{
		TableName:           aws.String(env.Tables.RateLimits),
		Item:                map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "k"}},
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	}
	calls.Reset()
	if _, err := env.Client.PutItem(ctx, put); err != nil {
		t.Fatal(err)
	}
	_, err := env.Client.PutItem(ctx, put)
	if !store.IsConditionFailed(err) || store.IsUnavailable(err) {
		t.Fatalf("second put: %v, want a failed condition", err)
	}
	if calls.Count("PutItem") != 2 || calls.Total() != 2 {
		t.Errorf("counted %v, want 2 PutItem", calls.Snapshot())
	}
}
