// Command benchreport regenerates every measured figure of BENCHMARKS.md in
// one run (`make bench-report`, inside bin/withdynamo): the critical-path
// table (cmd/benchpath), the cold starts (cmd/coldstart), the Go benchmarks
// that count calls, units, writes and allocations, and the rate limiter
// beside rate-limiter-flexible's RateLimiterDynamo with the two sides
// alternating round by round. Each figure goes between its own markers with
// the command that produced it.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"

	"github.com/zenithfresh/zenith-serverless/shared/benchdoc"
)

// goBench is one `go test -bench` run whose output goes into a section.
type goBench struct {
	section, pkg, bench, benchtime string
}

var goBenches = []goBench{
	{"bench-identity", "./shared/authapi", "BenchmarkValidate$|BenchmarkValidateTouch|BenchmarkValidateRequest|BenchmarkLogin$|BenchmarkLoginFailure|BenchmarkLogout", "200x"},
	{"bench-validate-logic", "./shared/sessions", "BenchmarkValidateLogic", "20000x"},
	{"bench-passwords", "./shared/passwords", "BenchmarkHash|BenchmarkVerify", "20x"},
	{"bench-sessions-20k", "./shared/sessions", "BenchmarkSessions20k", "5x"},
	{"bench-recorder", "./shared/metrics", "BenchmarkRecorder", "10000x"},
	{"bench-monitor-reads", "./shared/monitor", "BenchmarkMonitorReads", "20x"},
	{"bench-history-calls", "./shared/metrics/...", "BenchmarkHistoryCalls", "3x"},
	{"bench-ratelimit", "./shared/ratelimit", "BenchmarkDecision", "2000x"},
	// An Edge op waits for a second boundary and a Burst op is 200 decisions: 5 of each.
	{"bench-ratelimit-bounds", "./shared/ratelimit", "BenchmarkBurst|BenchmarkEdge", "5x"},
}

func main() {
	write := flag.String("write", "BENCHMARKS.md", "the markdown file to update")
	only := flag.String("only", "", "run only the parts whose section name contains this")
	rounds := flag.Int("compare-rounds", 3, "alternating rounds of the limiter comparison")
	flag.Parse()
	if os.Getenv("DYNAMODB_ENDPOINT") == "" {
		fail(errors.New("DYNAMODB_ENDPOINT is not set: run under bin/withdynamo (make bench-report)"))
	}
	want := func(name string) bool { return *only == "" || strings.Contains(name, *only) }
	if want("bench-path") {
		fail(run("go", "run", "./cmd/benchpath", "-write", *write))
	}
	if want("coldstart") {
		fail(run("go", "run", "./cmd/coldstart", "-write", *write))
	}
	for _, b := range goBenches {
		if want(b.section) {
			fail(runGoBench(*write, b))
		}
	}
	if want("ratelimit-compare") {
		fail(compareLimiters(*write, *rounds))
	}
	if want("binaries") {
		fail(binaries(*write))
	}
}

// binaries builds the four Lambda bootstraps as sam build does (make build:
// linux/arm64, static, stripped) and writes their sizes.
func binaries(file string) error {
	if err := run("make", "--no-print-directory", "build"); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("`make build` (linux/arm64, `CGO_ENABLED=0 -tags lambda.norpc -trimpath -ldflags='-s -w'`):\n\n| function | bootstrap bytes |\n|---|---|\n")
	for _, fn := range []string{"auth", "session", "traffic-manager", "system-monitor"} {
		st, err := os.Stat("bin/" + fn + "/bootstrap")
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "| %s | %d (%.1f MiB) |\n", fn, st.Size(), float64(st.Size())/(1<<20))
	}
	return benchdoc.ReplaceSection(file, "binaries", b.String())
}

func fail(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		os.Exit(1)
	}
}

func run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

func goTestArgs(b goBench) []string {
	return []string{"test", "-count=1", "-run", "^$", "-bench", b.bench, "-benchtime", b.benchtime, "-benchmem", "-timeout", "60m", b.pkg}
}

// runGoBench runs one benchmark set and writes its result lines (and the
// command) into its section.
func runGoBench(file string, b goBench) error {
	load := benchdoc.LoadAvg()
	args := goTestArgs(b)
	fmt.Fprintf(os.Stderr, "== go %s\n", strings.Join(args, " "))
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "cpu:") || strings.HasPrefix(l, "pkg:") {
			lines = append(lines, l)
		}
	}
	body := fmt.Sprintf("`go %s` (under bin/withdynamo), %s:\n\n```\n%s\n```\n",
		quote(args), benchdoc.Machine(load), strings.Join(lines, "\n"))
	fmt.Fprint(os.Stderr, body)
	return benchdoc.ReplaceSection(file, b.section, body)
}

// quote renders args for a shell, quoting the regexps.
func quote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "|$^*() ") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

var (
	goDecision   = regexp.MustCompile(`^BenchmarkDecision/(allowed|denied)/callers=(\d+)\S*\s.*?\s([0-9.]+) decisions/s`)
	nodeDecision = regexp.MustCompile(`^\| (allowed|denied) \| (\d+) \| ([0-9.]+) \|`)
)

// compareLimiters runs shared/ratelimit's decision benchmark and
// RateLimiterDynamo's same scenarios alternately, rounds times, on the one
// DynamoDB Local, and reports each side's median decisions/s and their ratio
// per scenario, so a drift of the machine's load hits both sides alike.
func compareLimiters(file string, rounds int) error {
	if err := run("bash", "-c", "cd bench/ratelimit-compare && [ -f node_modules/.package-lock.json ] || npm ci --no-audit --no-fund"); err != nil {
		return err
	}
	load := benchdoc.LoadAvg()
	goSide := map[string][]float64{}
	nodeSide := map[string][]float64{}
	goArgs := []string{"test", "-count=1", "-run", "^$", "-bench", "BenchmarkDecision/(allowed|denied)/", "-benchtime", "2000x", "./shared/ratelimit"}
	nodeArgs := []string{"--no-warnings", "bench/ratelimit-compare/compare.mjs", "2000", "0"}
	for r := 0; r < rounds; r++ {
		sides := []string{"go", "node"}
		if r%2 == 1 {
			sides = []string{"node", "go"}
		}
		for _, side := range sides {
			var out []byte
			var err error
			if side == "go" {
				out, err = exec.Command("go", goArgs...).CombinedOutput()
			} else {
				out, err = exec.Command("node", nodeArgs...).CombinedOutput()
			}
			if err != nil {
				return fmt.Errorf("%s side: %w\n%s", side, err, out)
			}
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				pat, into := goDecision, goSide
				if side == "node" {
					pat, into = nodeDecision, nodeSide
				}
				if m := pat.FindStringSubmatch(sc.Text()); m != nil {
					v, _ := strconv.ParseFloat(m[3], 64)
					into[m[1]+"/"+m[2]] = append(into[m[1]+"/"+m[2]], v)
				}
			}
			fmt.Fprintf(os.Stderr, "round %d %s done\n", r+1, side)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "`make bench-report` (cmd/benchreport): %d rounds, the sides alternating (Go first in odd rounds, Node first in even ones), each round `go %s` then `node %s` on one DynamoDB Local; %s.\n\n",
		rounds, quote(goArgs), strings.Join(nodeArgs, " "), benchdoc.Machine(load))
	b.WriteString("| scenario | callers | shared/ratelimit decisions/s (median) | RateLimiterDynamo decisions/s (median) | ratio of medians | rounds (Go / Node) |\n|---|---|---|---|---|---|\n")
	for _, scenario := range []string{"allowed", "denied"} {
		for _, callers := range []string{"1", "8", "32"} {
			k := scenario + "/" + callers
			g, n := benchdoc.Median(goSide[k]), benchdoc.Median(nodeSide[k])
			ratio := "n/a"
			if n > 0 {
				ratio = fmt.Sprintf("%.2f×", g/n)
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f | %s | %s / %s |\n", scenario, callers, g, n, ratio, join(goSide[k]), join(nodeSide[k]))
		}
	}
	fmt.Fprint(os.Stderr, b.String())
	return benchdoc.ReplaceSection(file, "ratelimit-compare", b.String())
}

func join(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strings.Join(s, ", ")
}
