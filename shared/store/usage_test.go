package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

func sum(cs ...*types.ConsumedCapacity) float64 {
	var n float64
	for _, c := range cs {
		if c != nil && c.CapacityUnits != nil {
			n += *c.CapacityUnits
		}
	}
	return n
}

func sumList(cs []types.ConsumedCapacity) float64 {
	var n float64
	for i := range cs {
		n += sum(&cs[i])
	}
	return n
}

// Every operation of a request's context reports its capacity into the
// request's Usage: what DynamoDB Local answered, reads and writes apart.
func TestUsageAddsEveryAnswersConsumedCapacity(t *testing.T) {
	env := dynamotest.New(t, "auth", nil, store.UsageOption())
	table := aws.String(env.Tables.Metrics)
	db := env.Client
	key := func(pk, sk string) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}, "sk": &types.AttributeValueMemberS{Value: sk}}
	}
	ctx, usage := store.WithUsage(context.Background())
	var wantRead, wantWrite float64
	check := func(op string, c float64, write bool) {
		t.Helper()
		if c <= 0 {
			t.Fatalf("%s answered no ConsumedCapacity: the option did not ask for it", op)
		}
		if write {
			wantWrite += c
		} else {
			wantRead += c
		}
	}

	put := &dynamodb.PutItemInput{TableName: table, Item: key("u", "1")}
	p, err := db.PutItem(ctx, put)
	if err != nil {
		t.Fatal(err)
	}
	check("PutItem", sum(p.ConsumedCapacity), true)
	if put.ReturnConsumedCapacity != "" {
		t.Error("the caller's input was edited")
	}
	g, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: table, Key: key("u", "1")})
	if err != nil {
		t.Fatal(err)
	}
	check("GetItem", sum(g.ConsumedCapacity), false)
	gs, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: table, Key: key("u", "1"), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	check("GetItem consistent", sum(gs.ConsumedCapacity), false)
	u, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: table, Key: key("u", "2"), UpdateExpression: aws.String("SET v = :v"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	check("UpdateItem", sum(u.ConsumedCapacity), true)
	bw, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{*table: {
		{PutRequest: &types.PutRequest{Item: key("u", "3")}}, {PutRequest: &types.PutRequest{Item: key("u", "4")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	check("BatchWriteItem", sumList(bw.ConsumedCapacity), true)
	bg, err := db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{*table: {Keys: []map[string]types.AttributeValue{key("u", "3"), key("u", "4")}}}})
	if err != nil {
		t.Fatal(err)
	}
	check("BatchGetItem", sumList(bg.ConsumedCapacity), false)
	tw, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{{Put: &types.Put{TableName: table, Item: key("u", "5")}}}})
	if err != nil {
		t.Fatal(err)
	}
	check("TransactWriteItems", sumList(tw.ConsumedCapacity), true)
	tg, err := db.TransactGetItems(ctx, &dynamodb.TransactGetItemsInput{TransactItems: []types.TransactGetItem{{Get: &types.Get{TableName: table, Key: key("u", "5")}}}})
	if err != nil {
		t.Fatal(err)
	}
	check("TransactGetItems", sumList(tg.ConsumedCapacity), false)
	// A paginated Query: every page's capacity counts.
	pages := dynamodb.NewQueryPaginator(db, &dynamodb.QueryInput{TableName: table, Limit: aws.Int32(2), KeyConditionExpression: aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "u"}}})
	n := 0
	for pages.HasMorePages() {
		q, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n++
		check("Query", sum(q.ConsumedCapacity), false)
	}
	if n < 3 {
		t.Errorf("%d query pages, want at least 3 (5 items, 2 a page)", n)
	}
	sc, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: table})
	if err != nil {
		t.Fatal(err)
	}
	check("Scan", sum(sc.ConsumedCapacity), false)
	d, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: table, Key: key("u", "1")})
	if err != nil {
		t.Fatal(err)
	}
	check("DeleteItem", sum(d.ConsumedCapacity), true)

	if usage.ReadUnits() != wantRead || usage.WriteUnits() != wantWrite {
		t.Errorf("usage read %v write %v, want %v and %v", usage.ReadUnits(), usage.WriteUnits(), wantRead, wantWrite)
	}

	// What the option leaves alone: a caller's own NONE, a failed call, a
	// context without an accumulator, and one detached from it.
	r0, w0 := usage.ReadUnits(), usage.WriteUnits()
	none, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: table, Key: key("u", "2"), ReturnConsumedCapacity: types.ReturnConsumedCapacityNone})
	if err != nil || none.ConsumedCapacity != nil {
		t.Errorf("caller's NONE: %v, capacity %v", err, none.ConsumedCapacity)
	}
	_, err = db.PutItem(ctx, &dynamodb.PutItemInput{TableName: table, Item: key("u", "2"), ConditionExpression: aws.String("attribute_not_exists(pk)")})
	if !store.IsConditionFailed(err) {
		t.Fatalf("conditional put: %v", err)
	}
	plain, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: table, Key: key("u", "2")})
	if err != nil || plain.ConsumedCapacity != nil {
		t.Errorf("no accumulator: %v, capacity %v (the input must be left as it is)", err, plain.ConsumedCapacity)
	}
	if _, err := db.GetItem(store.WithoutUsage(ctx), &dynamodb.GetItemInput{TableName: table, Key: key("u", "2")}); err != nil {
		t.Fatal(err)
	}
	if usage.ReadUnits() != r0 || usage.WriteUnits() != w0 {
		t.Errorf("usage moved to read %v write %v, want %v and %v", usage.ReadUnits(), usage.WriteUnits(), r0, w0)
	}

	// The concurrent calls of one request (run with -race).
	ctx2, usage2 := store.WithUsage(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var want2 float64
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := db.GetItem(ctx2, &dynamodb.GetItemInput{TableName: table, Key: key("u", "2")})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			want2 += sum(out.ConsumedCapacity)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if want2 <= 0 || usage2.ReadUnits() != want2 || usage2.WriteUnits() != 0 {
		t.Errorf("concurrent: usage read %v write %v, want %v and 0", usage2.ReadUnits(), usage2.WriteUnits(), want2)
	}
	var nilUsage *store.Usage
	if nilUsage.ReadUnits() != 0 || nilUsage.WriteUnits() != 0 || store.UsageFrom(context.Background()) != nil {
		t.Error("a missing accumulator must read as zero")
	}
}
