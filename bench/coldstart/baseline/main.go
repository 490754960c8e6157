// Command baseline is the yardstick of the cold-start comparison: the
// smallest useful Go Lambda function, built like ours, that loads the
// default AWS configuration and builds one DynamoDB client at init.
package main

import (
	"context"
	"encoding/json"
	"log"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

func main() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatalf("baseline: %v", err)
	}
	db := dynamodb.NewFromConfig(cfg)
	lambda.Start(func(ctx context.Context, ev json.RawMessage) (map[string]any, error) {
		return map[string]any{"statusCode": 200, "body": db.Options().Region}, nil
	})
}
