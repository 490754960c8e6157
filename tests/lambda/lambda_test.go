// Package lambda_test builds the four functions exactly as `sam build` does
// (the Makefile's build-<LogicalId> targets with ARTIFACTS_DIR) and runs them
// as Lambda runs them, under the AWS Lambda Runtime Interface Emulator
// (bin/aws-lambda-rie, installed by `make deps`), against DynamoDB Local.
package lambda_test

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/localdb"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
)

// function is one Lambda of template.yaml.
type function struct {
	logicalID string
	name      string // functions/<name>
	memoryMB  int    // template.yaml's default MemorySize
}

var functions = []function{
	{"AuthFunction", "auth", 1024},
	{"SessionFunction", "session", 512},
	{"TrafficManagerFunction", "traffic-manager", 512},
	{"SystemMonitorFunction", "system-monitor", 512},
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := localdb.FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// makeBuild runs the Makefile target SAM runs for a function, with ARTIFACTS_DIR
// in the environment as SAM sets it, and returns the bootstrap's path.
func makeBuild(t *testing.T, root string, f function, goarch, dir string) string {
	t.Helper()
	cmd := exec.Command("make", "--no-print-directory", "build-"+f.logicalID)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "ARTIFACTS_DIR="+dir, "LAMBDA_GOARCH="+goarch)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make build-%s (GOARCH=%s) failed: %v\n%s", f.logicalID, goarch, err, out)
	}
	path := filepath.Join(dir, "bootstrap")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("make build-%s did not write $ARTIFACTS_DIR/bootstrap: %v", f.logicalID, err)
	}
	return path
}

// TestMakefileBuildTargetsProduceStaticStrippedARM64 runs each target as SAM
// does (make build-<LogicalId>, ARTIFACTS_DIR set, default architecture) and
// checks the binary Lambda would run: linux/arm64 ELF, statically linked (no
// interpreter, no dynamic section), stripped (no symbol table, no DWARF).
func TestMakefileBuildTargetsProduceStaticStrippedARM64(t *testing.T) {
	root := repoRoot(t)
	for _, f := range functions {
		t.Run(f.logicalID, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command("make", "--no-print-directory", "build-"+f.logicalID)
			cmd.Dir = root
			cmd.Env = append(withoutEnv(os.Environ(), "LAMBDA_GOARCH"), "ARTIFACTS_DIR="+dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("make build-%s: %v\n%s", f.logicalID, err, out)
			}
			path := filepath.Join(dir, "bootstrap")
			info, err := os.Stat(path)
			if err != nil {
				t.Fatalf("no $ARTIFACTS_DIR/bootstrap: %v", err)
			}
			if info.Mode()&0o111 == 0 {
				t.Error("bootstrap is not executable")
			}
			bin, err := elf.Open(path)
			if err != nil {
				t.Fatalf("bootstrap is not an ELF file: %v", err)
			}
			defer bin.Close()
			if bin.Machine != elf.EM_AARCH64 || bin.Class != elf.ELFCLASS64 {
				t.Errorf("machine %v class %v, want EM_AARCH64 ELFCLASS64", bin.Machine, bin.Class)
			}
			if bin.OSABI != elf.ELFOSABI_NONE && bin.OSABI != elf.ELFOSABI_LINUX {
				t.Errorf("OS ABI %v, want Linux", bin.OSABI)
			}
			for _, p := range bin.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("program header %v: the binary is dynamically linked", p.Type)
				}
			}
			for _, s := range bin.Sections {
				switch {
				case s.Name == ".dynamic" || s.Name == ".interp":
					t.Errorf("section %s: the binary is dynamically linked", s.Name)
				case s.Name == ".symtab":
					t.Error("section .symtab: the binary is not stripped (-s)")
				case strings.HasPrefix(s.Name, ".debug") || strings.HasPrefix(s.Name, ".zdebug"):
					t.Errorf("section %s: DWARF left in (-w)", s.Name)
				}
			}
			t.Logf("%s linux/arm64 bootstrap: %d bytes (%.1f MiB)", f.name, info.Size(), float64(info.Size())/(1<<20))
		})
	}
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// emulator is one function running under aws-lambda-rie.
type emulator struct {
	f      function
	cmd    *exec.Cmd
	url    string
	out    *apitest.LogBuffer // the process's output while it runs
	binary string
}

// outputOnceReported returns the emulator's output once it holds the REPORT
// line of the first invocation: the emulator prints it just after answering,
// so reading right after the answer can miss it. Gives up after 10 s and
// returns what there is.
func (e *emulator) outputOnceReported() string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := e.out.String()
		if reportInit.MatchString(out) || time.Now().After(deadline) {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startEmulator(t *testing.T, rie, bootstrap string, f function, env []string) *emulator {
	t.Helper()
	apiPort, runtimePort := freePort(t), freePort(t)
	out := &apitest.LogBuffer{}
	cmd := exec.Command(rie,
		"--runtime-interface-emulator-address", fmt.Sprintf("127.0.0.1:%d", apiPort),
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", runtimePort),
		bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Env = append(env,
		"AWS_LAMBDA_FUNCTION_NAME="+f.name,
		fmt.Sprintf("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=%d", f.memoryMB),
		"AWS_LAMBDA_FUNCTION_TIMEOUT=60")
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group, so stopping it also stops the bootstrap it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start aws-lambda-rie: %v", err)
	}
	e := &emulator{f: f, cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d/2015-03-31/functions/function/invocations", apiPort), out: out, binary: bootstrap}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", apiPort))
		if err == nil {
			c.Close()
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("aws-lambda-rie for %s did not listen: %v\n%s", f.name, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 90 * time.Second}

// invoke posts a raw event to the emulator and returns the function's raw answer.
func (e *emulator) invoke(t *testing.T, event []byte) []byte {
	t.Helper()
	resp, err := httpClient.Post(e.url, "application/json", bytes.NewReader(event))
	if err != nil {
		t.Fatalf("invoke %s: %v\n%s", e.f.name, err, e.out)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("emulator answered %d for %s: %s\n%s", resp.StatusCode, e.f.name, body, e.out)
	}
	return body
}

// invokeHTTP invokes with an API Gateway event and decodes the HTTP answer,
// validating the exchange against openapi.yaml (TestMain).
func (e *emulator) invokeHTTP(t *testing.T, event []byte) apitest.Response {
	t.Helper()
	raw := e.invoke(t, event)
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(raw, &resp); err != nil || resp.StatusCode == 0 {
		t.Fatalf("%s did not answer an HTTP API response: %s\n%s", e.f.name, raw, e.out)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(event, &ev); err != nil {
		t.Fatalf("the event is not an API Gateway v2 event: %v", err)
	}
	apitest.Check(t, ev, resp)
	return apitest.Read(t, resp)
}

// fixture reads events/<name>.json and applies edits to it.
func fixture(t *testing.T, root, name string, edit func(ev map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "events", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if edit == nil {
		return b
	}
	var ev map[string]any
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("events/%s.json: %v", name, err)
	}
	edit(ev)
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func withToken(token string) func(ev map[string]any) {
	return func(ev map[string]any) {
		ev["headers"].(map[string]any)["authorization"] = "Bearer " + token
	}
}

// withPath sets the event's path (rawPath and requestContext.http.path).
func withPath(path string) func(ev map[string]any) {
	return func(ev map[string]any) {
		ev["rawPath"] = path
		ev["requestContext"].(map[string]any)["http"].(map[string]any)["path"] = path
	}
}

// withBody sets the event's body.
func withBody(t *testing.T, v any) func(ev map[string]any) {
	return func(ev map[string]any) { ev["body"] = apitest.JSON(t, v) }
}

func all(edits ...func(ev map[string]any)) func(ev map[string]any) {
	return func(ev map[string]any) {
		for _, e := range edits {
			e(ev)
		}
	}
}

type envelope int

const (
	standard envelope = iota // {"success":false,"error","code","requestId"}
	monitor                  // {"error","code","requestId","timestamp"}
	traffic                  // {"error":true,"message","code","requestId","timestamp"}
)

// checkError asserts status, code and the route's envelope, and the common headers.
func checkError(t *testing.T, res apitest.Response, status int, code string, env envelope) {
	t.Helper()
	body := res.Body
	if res.Status != status || body["code"] != code {
		t.Fatalf("got %d %v, want %d %s: %s", res.Status, body["code"], status, code, res.Raw)
	}
	id, _ := body["requestId"].(string)
	if id == "" || res.Headers["X-Request-ID"] != id {
		t.Errorf("requestId %q and X-Request-ID %q must match and be set", id, res.Headers["X-Request-ID"])
	}
	if res.Headers["Content-Type"] != "application/json" || res.Headers["Cache-Control"] != "no-cache, no-store, must-revalidate" {
		t.Errorf("headers %v lack the contract's Content-Type/Cache-Control", res.Headers)
	}
	switch env {
	case standard:
		if body["success"] != false {
			t.Errorf("standard envelope wants success:false: %s", res.Raw)
		}
		if _, ok := body["error"].(string); !ok {
			t.Errorf("standard envelope wants an error message: %s", res.Raw)
		}
	case monitor:
		if _, ok := body["error"].(string); !ok || body["timestamp"] == nil || body["success"] != nil {
			t.Errorf("monitor envelope wants error message and timestamp, no success: %s", res.Raw)
		}
	case traffic:
		if body["error"] != true || body["message"] == nil || body["timestamp"] == nil {
			t.Errorf("traffic envelope wants error:true, message, timestamp: %s", res.Raw)
		}
	}
}

var (
	reportInit    = regexp.MustCompile(`REPORT RequestId: \S+\tInit Duration: ([0-9.]+) ms\tDuration: ([0-9.]+) ms`)
	reportWarm    = regexp.MustCompile(`REPORT RequestId: \S+\tDuration: ([0-9.]+) ms`)
	rapidInitDone = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)
)

// TestFunctionsUnderEmulator builds each function as `bootstrap` for the host
// (the Makefile recipe with LAMBDA_GOARCH set to the host's), runs it under
// aws-lambda-rie on DynamoDB Local, invokes it with events/ fixtures and checks
// the shared request layer's answers: 404 (unknown sub-path), 405 (wrong
// method) and 400 (bad body or parameter) in each route's envelope. It logs
// the binary sizes and the emulator's init figures, for a look only: the
// figures of record are BENCHMARKS.md's, Cold start (cmd/coldstart).
func TestFunctionsUnderEmulator(t *testing.T) {
	root := repoRoot(t)
	rie := filepath.Join(root, "bin", "aws-lambda-rie")
	if _, err := os.Stat(rie); err != nil {
		t.Fatalf("%s is missing: run `make deps` (it installs the Runtime Interface Emulator): %v", rie, err)
	}
	db := dynamotest.New(t, "auth", nil)
	password := apitest.RandomHex(t, 16)
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(), // no shared AWS config from the machine
		"AWS_REGION=us-east-1",
		"DYNAMODB_ENDPOINT=" + db.Config.DynamoDBEndpoint,
		"MASTER_USERNAME=e2e_admin",
		"MASTER_PASSWORD=" + password,
	}
	for name, table := range db.Tables.Env() {
		env = append(env, name+"="+table)
	}

	emus := map[string]*emulator{}
	for _, f := range functions {
		bootstrap := makeBuild(t, root, f, runtime.GOARCH, t.TempDir())
		emus[f.name] = startEmulator(t, rie, bootstrap, f, env)
	}

	var token string
	t.Run("auth", func(t *testing.T) {
		e := emus["auth"]
		checkError(t, e.invokeHTTP(t, fixture(t, root, "auth-unknown-path", nil)), 404, "NOT_FOUND", standard)
		checkError(t, e.invokeHTTP(t, fixture(t, root, "auth-wrong-method", nil)), 405, "METHOD_NOT_ALLOWED", standard)
		checkError(t, e.invokeHTTP(t, fixture(t, root, "auth-bad-body", nil)), 400, "JSON_PARSE_ERROR", standard)
		checkError(t, e.invokeHTTP(t, fixture(t, root, "auth-base64-body", nil)), 400, "INVALID_BODY_TYPE", standard)
		checkError(t, e.invokeHTTP(t, fixture(t, root, "default-route", nil)), 404, "NOT_FOUND", standard)

		res := e.invokeHTTP(t, fixture(t, root, "auth-login", func(ev map[string]any) {
			b, _ := json.Marshal(map[string]string{"action": "login", "username": "e2e_admin", "password": password})
			ev["body"] = string(b)
		}))
		if res.Status != 200 {
			t.Fatalf("login: %d %s", res.Status, res.Raw)
		}
		token, _ = res.Get("session.id").(string)
		if !strings.HasPrefix(token, "session_") {
			t.Fatalf("login returned no session token: %s", res.Raw)
		}
		if len(res.Cookies) == 0 || !strings.HasPrefix(res.Cookies[0], "zenith_session=") {
			t.Errorf("login set no session cookie: %v", res.Cookies)
		}
	})
	if token == "" {
		t.Fatal("no session token; the protected routes cannot be checked")
	}

	t.Run("session", func(t *testing.T) {
		e := emus["session"]
		checkError(t, e.invokeHTTP(t, fixture(t, root, "sessions-unknown-path", nil)), 404, "NOT_FOUND", standard)
		checkError(t, e.invokeHTTP(t, fixture(t, root, "sessions-wrong-method", nil)), 405, "METHOD_NOT_ALLOWED", standard)
		checkError(t, e.invokeHTTP(t, fixture(t, root, "sessions-bad-body", withToken(token))), 400, "JSON_PARSE_ERROR", standard)
	})

	t.Run("traffic-manager", func(t *testing.T) {
		e := emus["traffic-manager"]
		checkError(t, e.invokeHTTP(t, fixture(t, root, "traffic-unknown-path", nil)), 404, "NOT_FOUND", traffic)
		checkError(t, e.invokeHTTP(t, fixture(t, root, "traffic-wrong-method", nil)), 405, "METHOD_NOT_ALLOWED", standard)
		checkError(t, e.invokeHTTP(t, fixture(t, root, "traffic-bad-status", nil)), 400, "INVALID_PARAMETER", traffic)
		checkError(t, e.invokeHTTP(t, fixture(t, root, "traffic-bad-body", withToken(token))), 400, "JSON_PARSE_ERROR", standard)
	})

	t.Run("system-monitor", func(t *testing.T) {
		e := emus["system-monitor"]
		checkError(t, e.invokeHTTP(t, fixture(t, root, "monitor-unknown-path", nil)), 404, "NOT_FOUND", monitor)
		checkError(t, e.invokeHTTP(t, fixture(t, root, "monitor-wrong-method", nil)), 405, "METHOD_NOT_ALLOWED", standard)
		checkError(t, e.invokeHTTP(t, fixture(t, root, "monitor-bad-endpoint", withToken(token))), 400, "INVALID_ENDPOINT", monitor)
		checkError(t, e.invokeHTTP(t, fixture(t, root, "monitor-bad-body", withToken(token))), 400, "JSON_PARSE_ERROR", standard)

		// The EventBridge schedule's event runs the alert evaluator, not the HTTP app.
		raw := e.invoke(t, fixture(t, root, "monitor-schedule", nil))
		var result struct {
			Window  int64 `json:"window"`
			Results []any `json:"results"`
		}
		if err := json.Unmarshal(raw, &result); err != nil || result.Window == 0 {
			t.Errorf("scheduled event: want an evaluation result, got %s", raw)
		}
	})

	// Every route's sample event (events/, as `sam local invoke` sends them)
	// answered 2xx by the built functions, each exchange validated against
	// openapi.yaml. (Acknowledging needs an alert, which needs a complete
	// minute of failures: tests/contract covers its 200; here an unknown id.)
	t.Run("every route's sample event", func(t *testing.T) {
		auth, sess, traffic, mon := emus["auth"], emus["session"], emus["traffic-manager"], emus["system-monitor"]
		ok := func(e *emulator, name string, edit func(ev map[string]any), status int) apitest.Response {
			t.Helper()
			res := e.invokeHTTP(t, fixture(t, root, name, edit))
			if res.Status != status {
				t.Fatalf("%s: %d, want %d: %s", name, res.Status, status, res.Raw)
			}
			return res
		}
		tok := withToken(token)
		ok(auth, "auth-get", tok, 200)
		ok(auth, "auth-validate", tok, 200)
		ok(auth, "auth-users-list", tok, 200)
		ok(auth, "auth-users-create", all(tok, withBody(t, map[string]string{"username": "staff_tester", "password": apitest.RandomPassword(t), "role": "staff_tester", "name": "Staff"})), 201)
		ok(auth, "auth-users-update", all(tok, withBody(t, map[string]string{"name": "Staff Renamed"})), 200)
		ok(auth, "auth-users-delete", tok, 200)

		second := ok(auth, "auth-login", withBody(t, map[string]string{"action": "login", "username": "e2e_admin", "password": password}), 200)
		other, _ := second.Get("session.id").(string)
		ok(sess, "sessions-count", tok, 200)
		list := ok(sess, "sessions-list", tok, 200)
		var handle string
		for _, x := range list.Body["sessions"].([]any) {
			if m := x.(map[string]any); m["current"] != true {
				handle, _ = m["id"].(string)
			}
		}
		if handle == "" {
			t.Fatalf("no second session listed: %s", list.Raw)
		}
		ok(sess, "sessions-end-one", all(tok, withPath("/api/sessions/"+handle)), 200)

		ok(traffic, "traffic-status", nil, 200)
		ok(traffic, "traffic-frontdoor", nil, 200)
		ok(traffic, "traffic-simulate", tok, 200)

		for _, name := range []string{"monitor-overview", "monitor-metrics", "monitor-history", "monitor-health", "monitor-alerts", "monitor-report"} {
			ok(mon, name, tok, 200)
		}
		ok(mon, "monitor-acknowledge", all(tok, withPath("/api/system-monitor/alerts/error_rate-60/acknowledge")), 404)

		ok(auth, "auth-logout", withToken(other), 200)
		// Last: it ends the token the other subtests use.
		ok(sess, "sessions-end-all", tok, 200)
	})

	// A second cold start of auth, now that the master user exists: no init
	// hashes a password (the bootstrap runs before the first request that
	// needs it, and the first instance's login created the user).
	again := startEmulator(t, rie, emus["auth"].binary, functions[0], env)
	checkError(t, again.invokeHTTP(t, fixture(t, root, "auth-unknown-path", nil)), 404, "NOT_FOUND", standard)

	// Logged for a look; BENCHMARKS.md's cold-start figures come from cmd/coldstart.
	var report strings.Builder
	report.WriteString("| function | host bootstrap | REPORT Init Duration | rapid INIT REPORT | first invoke Duration | fastest warm Duration | peak RSS (VmHWM) |\n|---|---|---|---|---|---|---|\n")
	rows := []struct {
		label string
		e     *emulator
	}{{"auth (its first login creates the master user)", emus["auth"]}, {"auth (master user exists)", again}}
	for _, f := range functions[1:] {
		rows = append(rows, struct {
			label string
			e     *emulator
		}{f.name, emus[f.name]})
	}
	for _, row := range rows {
		e, f := row.e, row.e.f
		info, _ := os.Stat(e.binary)
		output := e.outputOnceReported()
		initDur, firstDur, rapidInit, warm := "?", "?", "?", "n/a"
		if m := reportInit.FindStringSubmatch(output); m != nil {
			initDur, firstDur = m[1]+" ms", m[2]+" ms"
		} else {
			t.Errorf("%s: no REPORT line with Init Duration in the emulator output:\n%s", f.name, output)
		}
		if m := rapidInitDone.FindStringSubmatch(output); m != nil {
			if v, err := strconv.ParseFloat(m[1], 64); err == nil {
				rapidInit = fmt.Sprintf("%.2f ms", v)
			}
		}
		best := math.Inf(1)
		for _, m := range reportWarm.FindAllStringSubmatch(output, -1) {
			if v, err := strconv.ParseFloat(m[1], 64); err == nil && v < best {
				best = v
			}
		}
		if !math.IsInf(best, 1) {
			warm = fmt.Sprintf("%.2f ms", best)
		}
		fmt.Fprintf(&report, "| %s | %.1f MiB | %s | %s | %s | %s | %s |\n", row.label, float64(info.Size())/(1<<20),
			initDur, rapidInit, firstDur, warm, peakRSS(e.cmd.Process.Pid))
	}
	t.Logf("linux/%s under aws-lambda-rie, DynamoDB Local:\n%s", runtime.GOARCH, report.String())
}

// TestAuthStartsDuringOutage: the auth bootstrap started while DynamoDB is
// unreachable does not exit at init; its login answers the contract's 503
// SERVICE_UNAVAILABLE with Retry-After (the master-user bootstrap waits for
// the first request that needs it).
func TestAuthStartsDuringOutage(t *testing.T) {
	root := repoRoot(t)
	rie := filepath.Join(root, "bin", "aws-lambda-rie")
	if _, err := os.Stat(rie); err != nil {
		t.Fatalf("%s is missing: run `make deps` (it installs the Runtime Interface Emulator): %v", rie, err)
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"AWS_REGION=us-east-1",
		"DYNAMODB_ENDPOINT=" + apitest.ClosedURL(t),
		"DB_TIMEOUT=500",
		"MASTER_USERNAME=e2e_admin",
		"MASTER_PASSWORD=" + apitest.RandomHex(t, 16),
	}
	f := functions[0]
	e := startEmulator(t, rie, makeBuild(t, root, f, runtime.GOARCH, t.TempDir()), f, env)
	res := e.invokeHTTP(t, fixture(t, root, "auth-login", func(ev map[string]any) {
		b, _ := json.Marshal(map[string]string{"action": "login", "username": "e2e_admin", "password": "not-the-password"})
		ev["body"] = string(b)
	}))
	checkError(t, res, 503, "SERVICE_UNAVAILABLE", standard)
	if res.Headers["Retry-After"] == "" {
		t.Errorf("503 without Retry-After: %v", res.Headers)
	}
	// Still the same process: init ran once and did not fail.
	checkError(t, e.invokeHTTP(t, fixture(t, root, "auth-unknown-path", nil)), 404, "NOT_FOUND", standard)
	if strings.Contains(e.out.String(), "auth start") {
		t.Errorf("the bootstrap reported a failed start:\n%s", e.out)
	}
}

// peakRSS reads VmHWM of the emulator's child processes (the bootstrap).
// The emulator's own "Max Memory Used" only echoes the configured size.
func peakRSS(riePid int) string {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", riePid))
	for _, tf := range tasks {
		b, err := os.ReadFile(tf)
		if err != nil {
			continue
		}
		for _, pid := range strings.Fields(string(b)) {
			f, err := os.Open(fmt.Sprintf("/proc/%s/status", pid))
			if err != nil {
				continue
			}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
					f.Close()
					return strings.TrimSpace(v)
				}
			}
			f.Close()
		}
	}
	return "n/a"
}

// TestSIGTERMFlushesPendingCounts: a function holding counts it has not
// written yet (METRICS_FLUSH_INTERVAL far longer than the test) writes them
// when the emulator shuts it down with SIGTERM, as Lambda does before
// reclaiming an instance (lambda.WithEnableSIGTERM).
func TestSIGTERMFlushesPendingCounts(t *testing.T) {
	root := repoRoot(t)
	rie := filepath.Join(root, "bin", "aws-lambda-rie")
	if _, err := os.Stat(rie); err != nil {
		t.Fatalf("%s is missing: run `make deps` (it installs the Runtime Interface Emulator): %v", rie, err)
	}
	db := dynamotest.New(t, "traffic-manager", nil)
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"AWS_REGION=us-east-1",
		"DYNAMODB_ENDPOINT=" + db.Config.DynamoDBEndpoint,
		"METRICS_FLUSH_INTERVAL=60000",
		"METRICS_SHUTDOWN_FLUSH=true",
	}
	for name, table := range db.Tables.Env() {
		env = append(env, name+"="+table)
	}
	f := functions[2]
	e := startEmulator(t, rie, makeBuild(t, root, f, runtime.GOARCH, t.TempDir()), f, env)
	checkError(t, e.invokeHTTP(t, fixture(t, root, "traffic-unknown-path", nil)), 404, "NOT_FOUND", traffic)
	checkError(t, e.invokeHTTP(t, fixture(t, root, "traffic-unknown-path", nil)), 404, "NOT_FOUND", traffic)

	counters := metrics.NewCounters(db.Client, db.Tables.Metrics, db.Config.MetricShards, clock.System{})
	now := time.Now()
	requests := func() int64 {
		sum, err := counters.Sum(context.Background(), now.Add(-5*time.Minute), now.Add(5*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		return sum.Requests
	}
	if n := requests(); n != 1 {
		t.Fatalf("%d requests stored before shutdown, want 1 (the first, flushed by the second request)", n)
	}
	if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the emulator did not stop on SIGTERM:\n%s", e.out)
	}
	if n := requests(); n != 2 {
		t.Errorf("%d requests stored after SIGTERM, want 2 (the pending one written on shutdown):\n%s", n, e.out)
	}
}
