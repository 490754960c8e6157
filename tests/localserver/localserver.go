// Package localserver builds cmd/localapi and runs it as its own process, the
// way `make dev` does, for the suites that test the API over HTTP (the hostile
// input suite, the soak). It captures every line the server writes (its own
// log, the functions' logs, the EMF lines), so a suite can grep them.
package localserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/localdb"
)

// Build compiles cmd/localapi into dir and returns the binary's path.
func Build(ctx context.Context, dir string) (string, error) {
	root, err := localdb.FindRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "localapi")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/localapi")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/localapi: %w\n%s", err, out)
	}
	return bin, nil
}

// Server is a running localapi process.
type Server struct {
	URL      string // http://127.0.0.1:<port>
	DebugURL string // its /debug/vars when LOCALAPI_DEBUG_ADDR was given
	Banner   string
	cmd      *exec.Cmd
	logs     *Log
	exited   chan struct{}
	waitErr  error
}

// Log collects every line a process writes; safe for concurrent use.
type Log struct {
	mu    sync.Mutex
	lines []string
}

func (l *Log) add(line string) {
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
}

// Lines returns a copy of the lines so far.
func (l *Log) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// String is every line, joined.
func (l *Log) String() string { return strings.Join(l.Lines(), "\n") }

// startAttempts: a start that exits before its banner (auth's start reads
// the store, and a busy DynamoDB Local can exceed DB_TIMEOUT) is tried again,
// as Lambda would start another instance.
const startAttempts = 3

// Start runs the binary with env (added to a minimal PATH/HOME environment)
// on a free port and waits for its banner. The server is stopped when ctx
// ends or Stop is called; the process dies with its parent.
func Start(ctx context.Context, bin string, env map[string]string) (*Server, error) {
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		var s *Server
		if s, err = start(ctx, bin, env); err == nil {
			return s, nil
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	return nil, err
}

func start(ctx context.Context, bin string, env map[string]string) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	root, err := localdb.FindRoot()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	cmd.Dir = root
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(), "PORT=" + strconv.Itoa(port)}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start localapi: %w", err)
	}
	s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, logs: &Log{}, exited: make(chan struct{})}
	bannerDone := make(chan struct{})
	var bannerOnce sync.Once
	var banner []string
	var readers sync.WaitGroup
	read := func(r io.Reader, isStdout bool) {
		defer readers.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
		inBanner := isStdout
		for sc.Scan() {
			line := sc.Text()
			s.logs.add(line)
			if inBanner {
				banner = append(banner, line)
				if strings.HasPrefix(line, "Ctrl-C stops everything") {
					inBanner = false
					bannerOnce.Do(func() { close(bannerDone) })
				}
			}
		}
	}
	readers.Add(2)
	go read(stdout, true)
	go read(stderr, false)
	go func() {
		readers.Wait()
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.Stop()
		case <-s.exited:
		}
	}()
	select {
	case <-bannerDone:
	case <-s.exited:
		return nil, fmt.Errorf("localapi exited before it was ready (%v):\n%s", s.waitErr, s.logs.String())
	case <-time.After(120 * time.Second):
		s.Kill()
		return nil, fmt.Errorf("localapi not ready after 120 s:\n%s", s.logs.String())
	}
	s.Banner = strings.Join(banner, "\n")
	if m := regexp.MustCompile(`debug:\s+(\S+)`).FindStringSubmatch(s.Banner); m != nil {
		s.DebugURL = m[1]
	}
	return s, nil
}

// Logs is everything the server wrote so far (stdout and stderr).
func (s *Server) Logs() *Log { return s.logs }

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop sends Ctrl-C and waits (30 s at most, then SIGKILL). It returns the
// exit error, if any.
func (s *Server) Stop() error {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.Kill()
	}
	return s.waitErr
}

// Kill ends the server at once.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// Exited reports whether the process has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// Stats is what the server reports of itself: its resident memory (from
// /proc) and, when it serves /debug/vars, its goroutines and Go heap.
type Stats struct {
	RSSBytes      int64
	Goroutines    int
	HeapAlloc     uint64
	HeapLiveBytes uint64 // the live heap as of the last GC
}

// Stats reads the server's current figures.
func (s *Server) Stats() (Stats, error) {
	var st Stats
	rss, err := RSS(s.Pid())
	if err != nil {
		return st, err
	}
	st.RSSBytes = rss
	if s.DebugURL == "" {
		return st, nil
	}
	resp, err := http.Get(s.DebugURL)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	var vars struct {
		Goroutines    int    `json:"goroutines"`
		HeapLiveBytes uint64 `json:"heapLiveBytes"`
		MemStats      struct {
			HeapAlloc uint64 `json:"HeapAlloc"`
		} `json:"memstats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&vars); err != nil {
		return st, fmt.Errorf("read %s: %w", s.DebugURL, err)
	}
	st.Goroutines, st.HeapAlloc, st.HeapLiveBytes = vars.Goroutines, vars.MemStats.HeapAlloc, vars.HeapLiveBytes
	return st, nil
}

// RSS is a process's resident set size, from /proc/<pid>/status (Linux).
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err != nil {
					return 0, err
				}
				return kb * 1024, nil
			}
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// FreePort returns a loopback port nothing listens on.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
