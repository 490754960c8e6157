package store_test

import (
	"context"
	"errors"
	"fmt"
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
	ac, err := store.LoadAWS(context.Background(), cfg.Region, cfg.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	return store.NewDynamoDB(ac, cfg.DynamoDBEndpoint, cfg.DBTimeout)
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

func TestBatchWriteAndGetChunk(t *testing.T) {
	var calls store.CallCounter
	env := dynamotest.New(t, "test", nil, calls.Option())
	ctx := context.Background()
	table := env.Tables.RateLimits
	key := func(i int) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("k%03d", i)}}
	}
	var puts []types.WriteRequest
	for i := 0; i < 60; i++ {
		item := key(i)
		item["n"] = store.Num(int64(i))
		puts = append(puts, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
	}
	calls.Reset()
	if err := store.BatchWrite(ctx, env.Client, table, puts); err != nil {
		t.Fatal(err)
	}
	if got := calls.Count("BatchWriteItem"); got != 3 {
		t.Errorf("BatchWriteItem calls = %d, want 3 (25 a call)", got)
	}
	var keys []map[string]types.AttributeValue
	for i := 0; i < 150; i++ { // 60 present, 90 absent
		keys = append(keys, key(i))
	}
	calls.Reset()
	items, err := store.BatchGet(ctx, env.Client, map[string][]map[string]types.AttributeValue{table: keys})
	if err != nil {
		t.Fatal(err)
	}
	if got := calls.Count("BatchGetItem"); got != 2 {
		t.Errorf("BatchGetItem calls = %d, want 2 (100 keys a call)", got)
	}
	if len(items[table]) != 60 {
		t.Fatalf("read %d items, want 60", len(items[table]))
	}
	sum := int64(0)
	for _, it := range items[table] {
		sum += store.Int(it["n"])
	}
	if sum != 59*60/2 {
		t.Errorf("sum of n = %d, want %d", sum, 59*60/2)
	}
}

func TestAttributeHelpers(t *testing.T) {
	if store.String(&types.AttributeValueMemberS{Value: "x"}) != "x" || store.String(nil) != "" || store.String(store.Num(1)) != "" {
		t.Error("String")
	}
	if store.Int(store.Num(-42)) != -42 || store.Int(&types.AttributeValueMemberN{Value: "1.5"}) != 0 || store.Int(nil) != 0 {
		t.Error("Int")
	}
	if store.Float(&types.AttributeValueMemberN{Value: "0.25"}) != 0.25 || store.Float(&types.AttributeValueMemberN{Value: "NaN"}) != 0 || store.Float(&types.AttributeValueMemberS{Value: "1"}) != 0 {
		t.Error("Float")
	}
}

func TestAccesses(t *testing.T) {
	s := aws.String
	for _, tc := range []struct {
		in   any
		want []store.Access
	}{
		{&dynamodb.GetItemInput{TableName: s("t")}, []store.Access{{Action: "dynamodb:GetItem", Table: "t"}}},
		{&dynamodb.QueryInput{TableName: s("t"), IndexName: s("i")}, []store.Access{{Action: "dynamodb:Query", Table: "t/index/i"}}},
		{&dynamodb.ScanInput{TableName: s("t")}, []store.Access{{Action: "dynamodb:Scan", Table: "t"}}},
		{&dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"a": nil}}, []store.Access{{Action: "dynamodb:BatchWriteItem", Table: "a"}}},
		{&dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Put: &types.Put{TableName: s("a")}}, {ConditionCheck: &types.ConditionCheck{TableName: s("b")}}, {Delete: &types.Delete{TableName: s("a")}},
		}}, []store.Access{{Action: "dynamodb:PutItem", Table: "a"}, {Action: "dynamodb:ConditionCheckItem", Table: "b"}, {Action: "dynamodb:DeleteItem", Table: "a"}}},
		{&dynamodb.DescribeTableInput{TableName: s("t")}, []store.Access{{Action: "unknown:*dynamodb.DescribeTableInput", Table: "?"}}},
	} {
		if got := store.Accesses(tc.in); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Accesses(%T) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestCallCounterByTable(t *testing.T) {
	var calls store.CallCounter
	env := dynamotest.New(t, "test", nil, calls.Option())
	ctx := context.Background()
	sessions, metrics := env.Tables.Sessions, env.Tables.Metrics
	item := func(sk string) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "p"}, "sk": &types.AttributeValueMemberS{Value: sk}}
	}
	calls.Reset()
	if _, err := env.Client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(metrics), Item: item("a")}}, {Put: &types.Put{TableName: aws.String(metrics), Item: item("b")}},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.Query(ctx, &dynamodb.QueryInput{TableName: aws.String(sessions), IndexName: aws.String("userId-index"),
		KeyConditionExpression: aws.String("userId = :u"), ExpressionAttributeValues: map[string]types.AttributeValue{":u": &types.AttributeValueMemberS{Value: "x"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(metrics), Key: item("a")}); err != nil {
		t.Fatal(err)
	}
	if calls.Total() != 3 || calls.CountTable(metrics) != 2 || calls.CountTable(sessions) != 1 || calls.CountTable(env.Tables.Users) != 0 {
		t.Errorf("by table: total %d, metrics %d, sessions %d; want 3, 2, 1", calls.Total(), calls.CountTable(metrics), calls.CountTable(sessions))
	}
	want := map[store.Access]int{
		{Action: "dynamodb:PutItem", Table: metrics}:                        1, // one transaction of two puts
		{Action: "dynamodb:Query", Table: sessions + "/index/userId-index"}: 1,
		{Action: "dynamodb:GetItem", Table: metrics}:                        1,
	}
	if got := calls.AccessSnapshot(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("accesses = %v, want %v", got, want)
	}
	calls.Reset()
	if calls.Total() != 0 || calls.CountTable(metrics) != 0 || len(calls.AccessSnapshot()) != 0 {
		t.Error("Reset left counts")
	}
}

// DynamoDB Local's CRC32 quirk is worked around only with an endpoint
// override; against AWS the SDK keeps validating response checksums.
func TestChecksumQuirkOnlyWithEndpointOverride(t *testing.T) {
	local := client(t, "http://127.0.0.1:8000", "5000").Options()
	if !local.DisableValidateResponseChecksum || aws.ToString(local.BaseEndpoint) != "http://127.0.0.1:8000" {
		t.Errorf("local client: checksum validation disabled=%v endpoint=%v", local.DisableValidateResponseChecksum, aws.ToString(local.BaseEndpoint))
	}
	cfg, err := config.Load("test", func(k string) string { return map[string]string{"AWS_REGION": "eu-west-1"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	ac, err := store.LoadAWS(context.Background(), cfg.Region, cfg.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	real := store.NewDynamoDB(ac, cfg.DynamoDBEndpoint, cfg.DBTimeout).Options()
	if real.DisableValidateResponseChecksum || real.BaseEndpoint != nil {
		t.Errorf("AWS client: checksum validation disabled=%v endpoint=%v", real.DisableValidateResponseChecksum, real.BaseEndpoint)
	}
}
