// Package gitauthtest serves git repositories over HTTP on loopback with
// basic authentication, for tests of private repositories: git
// http-backend behind net/http/cgi, answering 401 without the right
// credentials.
package gitauthtest

import (
	"crypto/subtle"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// Server serves the bare repositories under Root at URL/NAME.git.
type Server struct {
	URL  string
	Root string
	// Denied counts requests refused for lack of credentials.
	Denied atomic.Int64
	// Served counts requests with the right credentials.
	Served atomic.Int64
}

// Start serves root (bare repositories) with git http-backend, asking for
// username and password; it stops when the test ends.
func Start(t testing.TB, root, username, password string) *Server {
	t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	backend := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"},
	}
	s := &Server{Root: root}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(username)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			s.Denied.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		s.Served.Add(1)
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Publish makes a bare copy of the work tree repository at src under the
// server's root as NAME.git (or refreshes it), and returns its URL.
func (s *Server) Publish(t testing.TB, src, name string) string {
	t.Helper()
	dest := filepath.Join(s.Root, name+".git")
	if _, err := os.Stat(dest); os.IsNotExist(err) {
		Git(t, "", "clone", "-q", "--bare", src, dest)
	} else {
		Git(t, dest, "fetch", "-q", src, "+refs/heads/*:refs/heads/*")
	}
	return s.URL + "/" + name + ".git"
}

// Git runs git in dir (the working directory when empty) with a fixed
// author and committer and no system or global config, as tests need for
// repositories they make; it fails the test on error and returns the
// output, trimmed.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}
