// Command system-monitor is the system-monitor Lambda function: it only wires configuration,
// clients and the handler; the routes and the scheduled alert evaluation live in
// shared/monitorapi, whose Invoke accepts both API Gateway and EventBridge events.
package main

import (
	"context"
	"log"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/monitorapi"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
)

func main() {
	ctx := context.Background()
	cfg, err := config.Load("system-monitor", os.Getenv)
	if err != nil {
		log.Fatalf("system-monitor: %v", err)
	}
	deps, err := platform.New(ctx, cfg)
	if err != nil {
		log.Fatalf("system-monitor: %v", err)
	}
	h, err := monitorapi.NewHandler(ctx, deps)
	if err != nil {
		log.Fatalf("system-monitor: %v", err)
	}
	lambda.StartWithOptions(h.Invoke, deps.StartOptions()...)
}
