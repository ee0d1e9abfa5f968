package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// serverProc is a baton-server child process on a free loopback port with
// its own data directory.
type serverProc struct {
	URL        string
	DataDir    string
	LogPath    string
	AdminToken string

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // how it exited, once exited is closed
}

// startServer runs bin with a fresh data dir under dir, waits until
// /readyz answers 200 and reads the admin token the server generated.
// Its output goes to dir/server.log.
func startServer(ctx context.Context, bin, dir string, args ...string) (*serverProc, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &serverProc{URL: "http://" + addr, DataDir: filepath.Join(dir, "data"), LogPath: filepath.Join(dir, "server.log"),
		exited: make(chan struct{})}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.Create(s.LogPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own copy
	s.cmd = exec.Command(bin, append([]string{"--addr", addr, "--data-dir", s.DataDir}, args...)...)
	s.cmd.Env = serverEnv()
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// The server dies with the driver, whatever ends it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.exited) }()
	if err := s.waitReady(ctx, 30*time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	token, err := os.ReadFile(filepath.Join(s.DataDir, "admin-token"))
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("admin token: %w", err)
	}
	s.AdminToken = strings.TrimSpace(string(token))
	return s, nil
}

// Pid is the server's process id.
func (s *serverProc) Pid() int { return s.cmd.Process.Pid }

func (s *serverProc) waitReady(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("baton-server exited before it was ready (%v); see %s", s.err, s.LogPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("baton-server not ready after %s; see %s", within, s.LogPath)
		}
	}
}

// Stop asks the server to shut down (SIGTERM) and kills it if it has not
// exited within 15 s.
func (s *serverProc) Stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		return errors.New("baton-server did not stop within 15 s; killed")
	}
	var exit *exec.ExitError
	if errors.As(s.err, &exit) {
		return fmt.Errorf("baton-server: %w; see %s", s.err, s.LogPath)
	}
	return s.err
}

// freePort returns a loopback address with a port that was free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// serverEnv is the driver's environment without BATON_* settings, so the
// server runs with its defaults and the flags given here.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BATON_") {
			env = append(env, kv)
		}
	}
	return env
}
