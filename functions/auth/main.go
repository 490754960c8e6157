// Command auth is the auth Lambda function: it only wires configuration,
// clients and the handler; the routes live in shared/authapi.
package main

import (
	"context"
	"log"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/zenithfresh/zenith-serverless/shared/authapi"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
)

func main() {
	ctx := context.Background()
	cfg, err := config.Load("auth", os.Getenv)
	if err != nil {
		log.Fatalf("auth: %v", err)
	}
	deps, err := platform.New(ctx, cfg)
	if err != nil {
		log.Fatalf("auth: %v", err)
	}
	app, err := authapi.New(ctx, deps)
	if err != nil {
		log.Fatalf("auth: %v", err)
	}
	lambda.StartWithOptions(app.Handle, deps.StartOptions()...)
}
