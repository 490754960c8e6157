package soak

import (
	"strings"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/tests/localserver"
)

// TestShortSoak is `make soak` in about ten seconds: mixed traffic at
// concurrency 8 through the built local API server with two instances of each
// function, an outage (connections refused) and answers cut after DynamoDB
// applied the call (30%) in the middle, and every check of
// the long run, the log grep for tokens, passwords and client IPs included.
func TestShortSoak(t *testing.T) {
	bin, err := localserver.Build(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// An outage, then answers cut after DynamoDB applied the call.
	faults := []dbproxy.Fault{{Kind: dbproxy.Refuse}, {Kind: dbproxy.Cut, Fraction: 0.3}}
	sum, err := Run(t.Context(), Options{
		Endpoint: dynamotest.Endpoint(t), Bin: bin,
		Duration: 10 * time.Second, Concurrency: 8, Instances: 2,
		Faults: faults, FaultFor: 2 * time.Second,
		DBTimeout: 2 * time.Second, FlushBound: time.Second, SampleEvery: 500 * time.Millisecond, Users: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	sum.Print(&b)
	t.Log("\n" + b.String())
	for _, v := range sum.Violations {
		t.Error(v)
	}
	if sum.SessionsChecked == 0 || sum.LimiterChecked == 0 || sum.SecretsChecked == 0 || sum.Counted == 0 {
		t.Errorf("the run checked nothing: %d sessions, %d admitted front-door requests, %d secrets, %d counted",
			sum.SessionsChecked, sum.LimiterChecked, sum.SecretsChecked, sum.Counted)
	}
}
