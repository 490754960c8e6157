package store

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// AWS reports a ReadCapacityUnits/WriteCapacityUnits split (DynamoDB Local
// only CapacityUnits): the split wins over the operation's kind.
func TestConsumedReadsTheSplitOrTheOperation(t *testing.T) {
	tests := []struct {
		name        string
		out         any
		read, write float64
	}{
		{"get, total only", &dynamodb.GetItemOutput{ConsumedCapacity: &types.ConsumedCapacity{CapacityUnits: aws.Float64(0.5)}}, 0.5, 0},
		{"put, total only", &dynamodb.PutItemOutput{ConsumedCapacity: &types.ConsumedCapacity{CapacityUnits: aws.Float64(2)}}, 0, 2},
		{"transact write with a split", &dynamodb.TransactWriteItemsOutput{ConsumedCapacity: []types.ConsumedCapacity{
			{CapacityUnits: aws.Float64(6), ReadCapacityUnits: aws.Float64(2), WriteCapacityUnits: aws.Float64(4)},
			{CapacityUnits: aws.Float64(2)},
		}}, 2, 6},
		{"batch get over two tables", &dynamodb.BatchGetItemOutput{ConsumedCapacity: []types.ConsumedCapacity{
			{CapacityUnits: aws.Float64(1)}, {CapacityUnits: aws.Float64(0.5)},
		}}, 1.5, 0},
		{"update with a split", &dynamodb.UpdateItemOutput{ConsumedCapacity: &types.ConsumedCapacity{CapacityUnits: aws.Float64(1), WriteCapacityUnits: aws.Float64(1)}}, 0, 1},
		{"no capacity", &dynamodb.QueryOutput{}, 0, 0},
		{"not an answer", "x", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r, w := consumed(tt.out); r != tt.read || w != tt.write {
				t.Errorf("consumed = %v, %v; want %v, %v", r, w, tt.read, tt.write)
			}
		})
	}
}
