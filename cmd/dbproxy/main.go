// Command dbproxy runs a shared/dbproxy proxy in front of DynamoDB (Local),
// for benchmarks and fault-injection scripts:
//
//	dbproxy -upstream http://127.0.0.1:8000 [-listen 127.0.0.1:0] [-delay 2ms] [-admin 127.0.0.1:0]
//
// Its first stdout line is the proxy's URL (point DYNAMODB_ENDPOINT at it);
// with -admin, the second line is the URL of a second listener that serves
// only the admin endpoints and stays reachable while a refuse fault closes the
// proxy's port. It serves until SIGINT or SIGTERM. The admin endpoints
// (/__dbproxy/stats, reset, delay, fault, clear) are described in the package
// documentation of shared/dbproxy.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dbproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	upstream := fs.String("upstream", os.Getenv("DYNAMODB_ENDPOINT"), "DynamoDB endpoint to forward to (default $DYNAMODB_ENDPOINT)")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	delay := fs.Duration("delay", 0, "wait this long before each call, like a network round trip")
	adminAddr := fs.String("admin", "", "also serve the admin endpoints on this address, e.g. 127.0.0.1:0")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *upstream == "" || *delay < 0 {
		fmt.Fprintln(stderr, "usage: dbproxy -upstream URL [-listen addr] [-delay duration] [-admin addr]")
		return 2
	}
	p, err := dbproxy.New(*upstream, dbproxy.WithListenAddr(*listen), dbproxy.WithDelay(*delay))
	if err != nil {
		fmt.Fprintf(stderr, "dbproxy: %v\n", err)
		return 1
	}
	defer p.Close()
	fmt.Fprintln(stdout, p.URL())
	if *adminAddr != "" {
		ln, err := net.Listen("tcp", *adminAddr)
		if err != nil {
			fmt.Fprintf(stderr, "dbproxy: admin listener: %v\n", err)
			return 1
		}
		srv := &http.Server{Handler: p.AdminHandler()}
		go func() {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintf(stderr, "dbproxy: admin listener: %v\n", err)
			}
		}()
		defer srv.Close()
		fmt.Fprintln(stdout, "http://"+ln.Addr().String())
	}
	<-ctx.Done()
	return 0
}
