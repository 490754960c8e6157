// Command coldstart measures each function's init under the Lambda Runtime
// Interface Emulator beside a baseline: a minimal aws-lambda-go binary that
// builds one DynamoDB client from config.LoadDefaultConfig
// (bench/coldstart/baseline). All five are built the same way (static,
// stripped, -tags lambda.norpc) for the host, then started fresh round after
// round, the order rotating every round, and the emulator's
// `INIT REPORT(durationMs: …)` line of the first invocation is read. The
// figure is each function's median over the rounds and its ratio to the
// baseline's median in the same run.
//
// `make bench-coldstart` runs it and writes the table into BENCHMARKS.md. No
// DynamoDB is needed: a function's init does no I/O (the auth bootstrap and
// the deployment key are read before the first request that needs them).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/benchdoc"
	"github.com/zenithfresh/zenith-serverless/shared/config"
)

// binary is one program measured: its package and the memory it is given.
type binary struct {
	name, pkg string
	memoryMB  int
	path      string
	inits     []float64 // ms
}

var initReport = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)

func main() {
	rounds := flag.Int("rounds", 12, "fresh starts of each binary (the median is reported)")
	write := flag.String("write", "", "markdown file whose coldstart section to replace (e.g. BENCHMARKS.md)")
	flag.Parse()
	if err := run(*rounds, *write); err != nil {
		fmt.Fprintf(os.Stderr, "coldstart: %v\n", err)
		os.Exit(1)
	}
}

func run(rounds int, write string) error {
	rie, err := filepath.Abs("bin/aws-lambda-rie")
	if err != nil {
		return err
	}
	if _, err := os.Stat(rie); err != nil {
		return fmt.Errorf("%s is missing: run make deps", rie)
	}
	dir, err := os.MkdirTemp("", "coldstart")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bins := []*binary{
		{name: "baseline (LoadDefaultConfig + one DynamoDB client)", pkg: "./bench/coldstart/baseline", memoryMB: 512},
		{name: "auth", pkg: "./functions/auth", memoryMB: 1024},
		{name: "session", pkg: "./functions/session", memoryMB: 512},
		{name: "traffic-manager", pkg: "./functions/traffic-manager", memoryMB: 512},
		{name: "system-monitor", pkg: "./functions/system-monitor", memoryMB: 512},
	}
	for _, b := range bins {
		b.path = filepath.Join(dir, strings.ReplaceAll(b.name[:min(len(b.name), 15)], " ", "_"), "bootstrap")
		build := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", b.path, b.pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	home, err := os.MkdirTemp("", "coldstart-home")
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)
	// The functions start as they do on AWS: no endpoint override, so they load
	// the AWS configuration exactly as the baseline does (credentials from the
	// environment). Their init needs no store; the one invocation that makes
	// them initialise then fails fast on this closed network (DB_TIMEOUT 300).
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local",
		"DB_TIMEOUT=300",
		"MASTER_USERNAME=cold_admin", "MASTER_PASSWORD=" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-pw",
		"METRICS_HISTORY_SOURCE=dynamodb",
	}
	for name, table := range config.DefaultTables.Env() {
		env = append(env, name+"="+table)
	}
	load0 := benchdoc.LoadAvg()
	for round := 0; round < rounds; round++ {
		order := slices.Clone(bins)
		k := round % len(order)
		order = append(order[k:], order[:k]...) // rotate: no binary always goes first
		for _, b := range order {
			ms, err := coldStart(rie, b, env)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", b.name, round, err)
			}
			b.inits = append(b.inits, ms)
		}
		fmt.Fprintf(os.Stderr, "round %d done\n", round+1)
	}
	table := render(bins, rounds, load0)
	fmt.Print(table)
	if write != "" {
		return benchdoc.ReplaceSection(write, "coldstart", table)
	}
	return nil
}

// coldStart starts the emulator with b, invokes it once (which runs the
// init), and returns the init's duration from the emulator's INIT REPORT.
func coldStart(rie string, b *binary, env []string) (float64, error) {
	apiPort, err := freePort()
	if err != nil {
		return 0, err
	}
	runtimePort, err := freePort()
	if err != nil {
		return 0, err
	}
	var out syncBuffer
	cmd := exec.Command(rie,
		"--runtime-interface-emulator-address", fmt.Sprintf("127.0.0.1:%d", apiPort),
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", runtimePort),
		b.path)
	cmd.Dir = filepath.Dir(b.path)
	cmd.Env = append(slices.Clone(env),
		"AWS_LAMBDA_FUNCTION_NAME="+filepath.Base(filepath.Dir(b.path)),
		fmt.Sprintf("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=%d", b.memoryMB),
		"AWS_LAMBDA_FUNCTION_TIMEOUT=60")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/2015-03-31/functions/function/invocations", apiPort)
	// An unknown path: every function answers it (404) through its whole init.
	event := []byte(`{"version":"2.0","rawPath":"/api/coldstart","requestContext":{"requestId":"cold","http":{"method":"GET","path":"/api/coldstart","sourceIp":"198.51.100.1"}}}`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(event))
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			break
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("emulator did not answer: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		if m := initReport.FindStringSubmatch(out.String()); m != nil {
			return strconv.ParseFloat(m[1], 64)
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("no INIT REPORT line:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func render(bins []*binary, rounds int, load0 string) string {
	var b strings.Builder
	base := benchdoc.Median(bins[0].inits)
	fmt.Fprintf(&b, "Measured by `make bench-coldstart` (cmd/coldstart) %s.\n", benchdoc.Machine(load0))
	fmt.Fprintf(&b, "Each binary built for the host (static, stripped, -tags lambda.norpc) and started fresh under aws-lambda-rie %d times, the order rotating each round; init = the emulator's INIT REPORT durationMs.\n\n", rounds)
	b.WriteString("| binary | median init (ms) | min / max (ms) | ratio to baseline (target ≤ 1.25) |\n|---|---|---|---|\n")
	for _, x := range bins {
		fmt.Fprintf(&b, "| %s | %.1f | %.1f / %.1f | %.2f |\n", x.name, benchdoc.Median(x.inits), slices.Min(x.inits), slices.Max(x.inits), benchdoc.Median(x.inits)/base)
	}
	return b.String()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer is a bytes.Buffer safe for the emulator's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
