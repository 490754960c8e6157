package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	zenith "github.com/zenithfresh/zenith-serverless"
	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/localdb"
	"github.com/zenithfresh/zenith-serverless/shared/openapitest"
)

// TestDevServerEndToEnd is `make dev` as a user runs it: the built localapi
// binary, no DYNAMODB_ENDPOINT (so it starts its own DynamoDB Local), no master
// password (so it generates one). It answers through the real handlers, then
// Ctrl-C stops it and everything it started.
func TestDevServerEndToEnd(t *testing.T) {
	root, err := localdb.FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := localdb.FindJar(root); err != nil {
		t.Fatalf("DynamoDB Local is required: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "localapi")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/localapi: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	prefix := "dev" + apitest.RandomHex(t, 4) + "-"
	names := config.DefaultTables.WithPrefix(prefix)
	cmd := exec.Command(bin)
	cmd.Dir = root
	env := []string{fmt.Sprintf("PORT=%d", port), "PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range names.Env() {
		env = append(env, k+"="+v)
	}
	cmd.Env = env // deliberately without DYNAMODB_ENDPOINT and MASTER_PASSWORD
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 256)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	// The banner: URL, DynamoDB Local, generated password, then "Ctrl-C stops everything."
	var banner []string
	deadline := time.After(90 * time.Second)
	for done := false; !done; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("localapi exited before it was ready:\n%s\n%s", strings.Join(banner, "\n"), stderr.String())
			}
			banner = append(banner, line)
			done = strings.HasPrefix(line, "Ctrl-C stops everything")
		case <-deadline:
			t.Fatalf("localapi not ready after 90s:\n%s\n%s", strings.Join(banner, "\n"), stderr.String())
		}
	}
	go func() { // keep draining (EMF lines and logs go to stdout)
		for line := range lines {
			_ = line
		}
	}()
	text := strings.Join(banner, "\n")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if !strings.Contains(text, "listening on "+base) {
		t.Errorf("banner does not print the URL %s:\n%s", base, text)
	}
	dbURL := regexp.MustCompile(`DynamoDB:\s+(http://127\.0\.0\.1:\d+) \(started here`).FindStringSubmatch(text)
	if dbURL == nil {
		t.Fatalf("banner does not say it started DynamoDB Local:\n%s", text)
	}
	pw := regexp.MustCompile(`master user: admin, password (\S+) \(generated`).FindStringSubmatch(text)
	if pw == nil {
		t.Fatalf("banner does not print the generated master password:\n%s", text)
	}

	// do sends a request and validates the exchange, as spoken over HTTP,
	// against openapi.yaml (every answer here comes from a function).
	v := openapitest.Active()
	if v == nil {
		t.Fatal("no validator: TestMain must run openapitest.Main")
	}
	do := func(method, path, contentType, body string, headers map[string]string) (*http.Response, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("%s %s: body is not JSON: %q", method, path, raw)
			}
		}
		if err := v.CheckHTTP(req, []byte(body), resp, raw); err != nil {
			t.Errorf("answer does not match openapi.yaml: %v\nbody: %s", err, raw)
		}
		return resp, m
	}

	t.Run("GET /openapi.yaml serves the document", func(t *testing.T) {
		resp, err := http.Get(base + "/openapi.yaml")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/yaml" || !bytes.Equal(raw, zenith.OpenAPI) {
			t.Errorf("got %d %q, %d bytes; want the embedded openapi.yaml (%d bytes)", resp.StatusCode, resp.Header.Get("Content-Type"), len(raw), len(zenith.OpenAPI))
		}
	})
	if !strings.Contains(text, "openapi:    "+base+"/openapi.yaml") {
		t.Errorf("banner does not point to the document:\n%s", text)
	}
	t.Run("status and front door", func(t *testing.T) {
		for _, q := range []string{"?status=true", ""} {
			if resp, m := do("GET", "/api/traffic-manager"+q, "", "", nil); resp.StatusCode != 200 {
				t.Errorf("%s: %d %v", q, resp.StatusCode, m)
			}
		}
	})
	t.Run("GET /api/health answers through system-monitor", func(t *testing.T) {
		resp, m := do("GET", "/api/health", "", "", nil)
		checks, _ := m["checks"].(map[string]any)
		if resp.StatusCode != 200 || m["status"] != "ok" || checks["dynamodb"] != "ok" || m["version"] != "dev" || m["timestamp"] == nil {
			t.Errorf("got %d %v", resp.StatusCode, m)
		}
		if resp, m := do("POST", "/api/health", "application/json", "{}", nil); resp.StatusCode != 405 || m["code"] != "METHOD_NOT_ALLOWED" {
			t.Errorf("POST: got %d %v", resp.StatusCode, m)
		}
	})

	t.Run("traffic-manager rejects a bad status in its envelope", func(t *testing.T) {
		resp, m := do("GET", "/api/traffic-manager?status=bogus", "", "", nil)
		if resp.StatusCode != 400 || m["code"] != "INVALID_PARAMETER" || m["error"] != true || m["timestamp"] == nil {
			t.Errorf("got %d %v", resp.StatusCode, m)
		}
		if resp.Header.Get("X-Request-ID") == "" || resp.Header.Get("X-Request-ID") != m["requestId"] {
			t.Errorf("X-Request-ID %q vs requestId %v", resp.Header.Get("X-Request-ID"), m["requestId"])
		}
	})
	t.Run("auth rejects an empty body", func(t *testing.T) {
		resp, m := do("POST", "/api/auth", "application/json", "", nil)
		if resp.StatusCode != 400 || m["code"] != "EMPTY_BODY" || m["success"] != false {
			t.Errorf("got %d %v", resp.StatusCode, m)
		}
	})
	t.Run("$default answers 404 through auth", func(t *testing.T) {
		resp, m := do("GET", "/favicon.ico", "", "", nil)
		if resp.StatusCode != 404 || m["code"] != "NOT_FOUND" {
			t.Errorf("got %d %v", resp.StatusCode, m)
		}
	})
	t.Run("login sets the cookie that then authenticates", func(t *testing.T) {
		body := fmt.Sprintf(`{"action":"login","username":"admin","password":%q}`, pw[1])
		resp, m := do("POST", "/api/auth", "application/json", body, nil)
		if resp.StatusCode != 200 || m["success"] != true {
			t.Fatalf("login: %d %v", resp.StatusCode, m)
		}
		var cookie *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "zenith_session" {
				cookie = c
			}
		}
		if cookie == nil || !cookie.HttpOnly || cookie.Value == "" {
			t.Fatalf("no HttpOnly zenith_session cookie: %v", resp.Header.Values("Set-Cookie"))
		}
		resp, m = do("GET", "/api/auth", "", "", map[string]string{"Cookie": "zenith_session=" + cookie.Value})
		if resp.StatusCode != 200 || m["success"] != true {
			t.Errorf("validate with the cookie: %d %v", resp.StatusCode, m)
		}
		for _, path := range []string{"/api/sessions", "/api/sessions/count", "/api/auth/users", "/api/system-monitor", "/api/system-monitor?endpoint=metrics"} {
			if resp, m := do("GET", path, "", "", map[string]string{"Cookie": "zenith_session=" + cookie.Value}); resp.StatusCode != 200 {
				t.Errorf("%s with the cookie: %d %v", path, resp.StatusCode, m)
			}
		}
		// A form post is not JSON, so it arrives base64-encoded; the request layer undoes it.
		resp, m = do("POST", "/api/auth", "application/x-www-form-urlencoded", "[1]", nil)
		if resp.StatusCode != 400 || m["code"] != "INVALID_BODY_TYPE" {
			t.Errorf("base64 body: %d %v", resp.StatusCode, m)
		}
	})

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("localapi did not exit cleanly on Ctrl-C: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("localapi still running 30s after Ctrl-C")
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(dbURL[1], "http://"), time.Second); err == nil {
		c.Close()
		t.Errorf("DynamoDB Local at %s still answers after localapi stopped", dbURL[1])
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still open after localapi stopped", port)
	}
}
