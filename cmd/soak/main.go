// Command soak is `make soak`: mixed traffic through the local API server
// (several instances of each function) for three minutes at concurrency 32, with
// DynamoDB faults injected for part of it, then the checks of tests/soak
// (no unexpected 5xx, no lost session, the limiter's bound, the counted
// totals, flat memory and goroutines, no secret in any log line) and a
// summary. It exits 1 when a property is violated.
//
//	soak [-duration 3m] [-concurrency 32] [-instances 3] [-faults default|none] [-fault-for 8s]
//
// DYNAMODB_ENDPOINT names a running DynamoDB Local; without it one is started
// in memory.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
	"github.com/zenithfresh/zenith-serverless/shared/localdb"
	"github.com/zenithfresh/zenith-serverless/tests/localserver"
	"github.com/zenithfresh/zenith-serverless/tests/soak"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 3*time.Minute, "length of the mixed traffic (a minute or more: the first and last minute's memory are compared)")
	concurrency := fs.Int("concurrency", 32, "clients sending at once")
	instances := fs.Int("instances", 3, "instances of each function (LOCALAPI_INSTANCES)")
	faults := fs.String("faults", "default", "faults to inject: default (refuse, hang, throttle 30%, cut 30%, server-error 50%) or none")
	faultFor := fs.Duration("fault-for", 8*time.Second, "how long each fault stays on")
	dbTimeout := fs.Duration("db-timeout", 2*time.Second, "the functions' DB_TIMEOUT (far above a busy DynamoDB Local's latency: a 503 outside the fault windows counts as unexpected)")
	flushBound := fs.Duration("flush-bound", time.Second, "how late a count may reach the minute counters (METRICS_FLUSH_INTERVAL)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o := soak.Options{
		Duration: *duration, Concurrency: *concurrency, Instances: *instances, FaultFor: *faultFor,
		DBTimeout: *dbTimeout, FlushBound: *flushBound, SampleEvery: 5 * time.Second, Users: 8, Log: stderr,
	}
	switch *faults {
	case "none":
	case "default":
		o.Faults = soak.DefaultFaults()
	default:
		fmt.Fprintf(stderr, "soak: -faults must be default or none, got %q\n", *faults)
		return 2
	}
	if fs.NArg() > 0 || o.Duration <= 0 || o.Concurrency < 1 || o.Instances < 1 {
		fs.Usage()
		return 2
	}

	o.Endpoint = os.Getenv("DYNAMODB_ENDPOINT")
	if o.Endpoint == "" {
		root, err := localdb.FindRoot()
		if err != nil {
			fmt.Fprintf(stderr, "soak: %v\n", err)
			return 1
		}
		srv, err := localdb.Start(ctx, root)
		if err != nil {
			fmt.Fprintf(stderr, "soak: start DynamoDB Local: %v\n", err)
			return 1
		}
		defer srv.Stop()
		o.Endpoint = srv.Endpoint
	}
	dir, err := os.MkdirTemp("", "soak-")
	if err != nil {
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if o.Bin, err = localserver.Build(ctx, dir); err != nil {
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "soak: %s at concurrency %d, %d instances of each function, faults: %s\n", o.Duration, o.Concurrency, o.Instances, kinds(o.Faults))
	sum, err := soak.Run(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return 1
	}
	sum.Print(stdout)
	if !sum.OK() {
		return 1
	}
	return 0
}

func kinds(fs []dbproxy.Fault) string {
	if len(fs) == 0 {
		return "none"
	}
	s := ""
	for i, f := range fs {
		if i > 0 {
			s += ", "
		}
		s += string(f.Kind)
	}
	return s
}
