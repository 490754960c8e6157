// Command withdynamo runs a command with one DynamoDB Local around it:
//
//	withdynamo -- go test -count=1 ./...
//
// It starts DynamoDB Local (shared/localdb, from the npm package pinned under
// tools/dynamodb-local) on a free loopback port, exports DYNAMODB_ENDPOINT to
// the command, waits for it, stops DynamoDB Local and exits with the command's
// status. `make test` uses it so the whole test run shares one emulator (each
// test isolates itself by table-name prefix). When DYNAMODB_ENDPOINT is already
// set, that endpoint is used and nothing is started.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/zenithfresh/zenith-serverless/shared/localdb"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: withdynamo -- <command> [args...]")
		return 2
	}
	env := os.Environ()
	if ep := os.Getenv("DYNAMODB_ENDPOINT"); ep != "" {
		fmt.Fprintf(os.Stderr, "withdynamo: using DYNAMODB_ENDPOINT=%s\n", ep)
	} else {
		root, err := localdb.FindRoot()
		if err != nil {
			fmt.Fprintf(os.Stderr, "withdynamo: %v\n", err)
			return 1
		}
		srv, err := localdb.Start(context.Background(), root)
		if err != nil {
			fmt.Fprintf(os.Stderr, "withdynamo: DynamoDB Local could not be started: %v\n", err)
			return 1
		}
		defer srv.Stop()
		fmt.Fprintf(os.Stderr, "withdynamo: DynamoDB Local on %s\n", srv.Endpoint)
		env = append(env, "DYNAMODB_ENDPOINT="+srv.Endpoint)
	}

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = env
	// The terminal sends Ctrl-C to the whole process group, the child included;
	// withdynamo only has to outlive it so DynamoDB Local is stopped afterwards.
	// A SIGTERM aimed at withdynamo alone is passed on.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "withdynamo: %v\n", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGTERM {
				_ = cmd.Process.Signal(s)
			}
		case err := <-done:
			var exit *exec.ExitError
			switch {
			case err == nil:
				return 0
			case errors.As(err, &exit):
				if code := exit.ExitCode(); code > 0 {
					return code
				}
				return 1
			default:
				fmt.Fprintf(os.Stderr, "withdynamo: %v\n", err)
				return 1
			}
		}
	}
}
