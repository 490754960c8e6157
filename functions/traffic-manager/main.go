// Command traffic-manager is the traffic-manager Lambda function: it only wires configuration,
// clients and the handler; the routes live in shared/trafficapi.
package main

import (
	"context"
	"log"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/trafficapi"
)

func main() {
	ctx := context.Background()
	cfg, err := config.Load("traffic-manager", os.Getenv)
	if err != nil {
		log.Fatalf("traffic-manager: %v", err)
	}
	deps, err := platform.New(ctx, cfg)
	if err != nil {
		log.Fatalf("traffic-manager: %v", err)
	}
	app, err := trafficapi.New(ctx, deps)
	if err != nil {
		log.Fatalf("traffic-manager: %v", err)
	}
	lambda.StartWithOptions(app.Handle, deps.StartOptions()...)
}
