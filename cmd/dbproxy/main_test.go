package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestRunPrintsURLsAndServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, w := io.Pipe()
	done := make(chan int, 1)
	// No DynamoDB is needed: only the admin endpoints are called.
	go func() {
		done <- run(ctx, []string{"-upstream", "http://127.0.0.1:1", "-delay", "5ms", "-admin", "127.0.0.1:0"}, w, io.Discard)
		w.Close()
	}()
	lines := bufio.NewScanner(r)
	var urls []string
	for len(urls) < 2 && lines.Scan() {
		urls = append(urls, lines.Text())
	}
	if len(urls) != 2 || !strings.HasPrefix(urls[0], "http://127.0.0.1:") || !strings.HasPrefix(urls[1], "http://127.0.0.1:") {
		t.Fatalf("stdout lines = %q, want the proxy URL then the admin URL", urls)
	}
	for _, u := range urls {
		resp, err := http.Get(u + "/__dbproxy/delay")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != `{"ms":5}` {
			t.Errorf("GET %s/__dbproxy/delay = %d %s", u, resp.StatusCode, b)
		}
	}
	cancel()
	go io.Copy(io.Discard, r)
	if code := <-done; code != 0 {
		t.Errorf("exit code %d", code)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	t.Setenv("DYNAMODB_ENDPOINT", "")
	for _, args := range [][]string{{}, {"-upstream", "http://x", "extra"}, {"-upstream", "http://x", "-delay", "-1s"}, {"-nope"}} {
		if code := run(context.Background(), args, io.Discard, io.Discard); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
	}
	if code := run(context.Background(), []string{"-upstream", "ftp://x"}, io.Discard, io.Discard); code != 1 {
		t.Errorf("a non-HTTP upstream: exit %d, want 1", code)
	}
}
