package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// TestRoundRobinSpreadsRequests: with LOCALAPI_INSTANCES=n, requests and
// scheduled events go to each instance in turn.
func TestRoundRobinSpreadsRequests(t *testing.T) {
	const n = 3
	hits := make([]int, n)
	invokes := make([]int, n)
	rr := &roundRobin{}
	for i := range n {
		rr.handlers = append(rr.handlers, func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
			hits[i]++
			return events.APIGatewayV2HTTPResponse{StatusCode: 200}, nil
		})
		rr.invokers = append(rr.invokers, func(context.Context, json.RawMessage) (any, error) {
			invokes[i]++
			return nil, nil
		})
	}
	for range 3 * n {
		if _, err := rr.Handle(context.Background(), events.APIGatewayV2HTTPRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if _, err := rr.Invoke(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if hits[i] != 3 || invokes[i] != 1 {
			t.Errorf("instance %d: %d requests and %d scheduled events, want 3 and 1", i, hits[i], invokes[i])
		}
	}
}

// TestInstancesOption: LOCALAPI_INSTANCES outside 1..MaxInstances stops the start with an error naming it.
func TestInstancesOption(t *testing.T) {
	for _, v := range []string{"0", "-1", "x", "65"} {
		err := run(context.Background(), func(k string) string {
			if k == "LOCALAPI_INSTANCES" {
				return v
			}
			return ""
		}, nil)
		if err == nil || !strings.Contains(err.Error(), "LOCALAPI_INSTANCES") {
			t.Errorf("LOCALAPI_INSTANCES=%s: %v", v, err)
		}
	}
}
