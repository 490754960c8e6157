// Command session is the session Lambda function: it only wires configuration,
// clients and the handler; the routes live in shared/sessionapi.
package main

import (
	"context"
	"log"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/sessionapi"
)

func main() {
	ctx := context.Background()
	cfg, err := config.Load("session", os.Getenv)
	if err != nil {
		log.Fatalf("session: %v", err)
	}
	deps, err := platform.New(ctx, cfg)
	if err != nil {
		log.Fatalf("session: %v", err)
	}
	app, err := sessionapi.New(ctx, deps)
	if err != nil {
		log.Fatalf("session: %v", err)
	}
	lambda.StartWithOptions(app.Handle, deps.StartOptions()...)
}
