package e2e

import (
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
)

// Paths filled by TestMain.
var (
	binDir   string
	repoRoot string
	// stepImage is the image the tests' agents use for steps.
	stepImage = "baton/busybox:latest"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := exec.Command("docker", "info").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "e2e: Docker is required when CI=true but `docker info` failed:", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "e2e: SKIPPING end-to-end tests: no Docker engine (docker info failed)")
		return 0
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "baton-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	build := exec.Command("go", "build", "-o", dir+"/", "./server/cmd/baton-server", "./agent/cmd/baton-agent")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build failed: %v\n%s", err, out)
		return 1
	}
	img := exec.Command(filepath.Join(dir, "baton-agent"), "build-image", "--tag", stepImage)
	if out, err := img.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building the step image failed (is busybox-static installed?): %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// proc is a started binary whose combined output is kept in a file.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func start(t *testing.T, name string, args []string, env ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, args[0]), args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("---- %s output ----\n%s", name, b)
		}
	})
	return p
}

// stop sends SIGTERM and waits; SIGKILL after 20 s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.t.Errorf("%s did not stop within 20s of SIGTERM; killing it", p.name)
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// server is a running baton-server and an admin client for it.
type server struct {
	*proc
	addr, dataDir, url, admin string
}

func startServer(t *testing.T, addr, dataDir string, extra ...string) *server {
	t.Helper()
	return startNamedServer(t, "baton-server", addr, dataDir, extra...)
}

// startNamedServer starts a server whose output is labelled name.
func startNamedServer(t *testing.T, name, addr, dataDir string, extra ...string) *server {
	t.Helper()
	p := start(t, name, append([]string{"baton-server", "--addr", addr, "--data-dir", dataDir}, extra...))
	s := &server{proc: p, addr: addr, dataDir: dataDir, url: "http://" + addr}
	waitFor(t, 30*time.Second, "baton-server ready", func() bool {
		select {
		case <-p.done:
			t.Fatalf("baton-server exited: %v\n%s", p.err, p.output())
		default:
		}
		resp, err := http.Get(s.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	b, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	s.admin = strings.TrimSpace(string(b))
	return s
}

// do calls the admin API and decodes a JSON answer into out (if non-nil).
func (s *server) do(t *testing.T, method, path, ctype string, body []byte, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.admin)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if sp, ok := out.(*string); ok {
			*sp = string(b)
		} else if len(b) > 0 {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s %s: %v: %s", method, path, err, b)
			}
		}
	}
	return resp.StatusCode
}

func (s *server) registrationToken(t *testing.T) string {
	t.Helper()
	var tok struct{ Token string }
	if code := s.do(t, "POST", "/api/v1/registration-tokens", "", nil, &tok); code != 201 || tok.Token == "" {
		t.Fatalf("create registration token: %d %+v", code, tok)
	}
	return tok.Token
}

type stepView struct {
	Name     string            `json:"name"`
	State    string            `json:"state"`
	ExitCode *int              `json:"exit_code"`
	Reason   string            `json:"reason"`
	Attempt  int               `json:"attempt"`
	Outputs  map[string]string `json:"outputs"`
	Attempts []struct {
		Attempt    int        `json:"attempt"`
		State      string     `json:"state"`
		ExitCode   *int       `json:"exit_code"`
		Reason     string     `json:"reason"`
		StartedAt  time.Time  `json:"started_at"`
		FinishedAt *time.Time `json:"finished_at"`
	} `json:"attempts"`
	Error      string     `json:"error"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	AgentID    string     `json:"agent_id"`
}

type runView struct {
	ID    string     `json:"id"`
	State string     `json:"state"`
	Steps []stepView `json:"steps"`
}

func (r runView) step(t *testing.T, name string) stepView {
	t.Helper()
	for _, s := range r.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("run has no step %q: %+v", name, r)
	return stepView{}
}

func (s *server) submit(t *testing.T, project, runbook string) runView {
	t.Helper()
	return s.submitParams(t, project, runbook, nil)
}

func (s *server) submitParams(t *testing.T, project, runbook string, params map[string]any) runView {
	t.Helper()
	var run runView
	body, _ := json.Marshal(map[string]any{"project": project, "runbook": runbook, "params": params})
	if code := s.do(t, "POST", "/api/v1/runs", "application/json", body, &run); code != 201 {
		t.Fatalf("create run: %d %+v", code, run)
	}
	return run
}

// waitRun polls the run until it is terminal.
func (s *server) waitRun(t *testing.T, id string, timeout time.Duration) runView {
	t.Helper()
	var run runView
	waitFor(t, timeout, "run "+id+" to end", func() bool {
		run = runView{}
		s.do(t, "GET", "/api/v1/runs/"+id, "", nil, &run)
		return run.State == "succeeded" || run.State == "failed" || run.State == "cancelled"
	})
	return run
}

// stepLog returns what a step printed: its stored log without the closing
// line the agent adds, which it checks names a container and an exit code.
func (s *server) stepLog(t *testing.T, runID, step string) string {
	t.Helper()
	return s.attemptLog(t, runID, step, 0)
}

var endLineRe = regexp.MustCompile(`(?m)^baton: step ended: (succeeded|failed \([a-z_]+\)), exit code (-?\d+|none), container ([0-9a-f]{12}|none)\n\z`)

func (s *server) attemptLog(t *testing.T, runID, step string, attempt int) string {
	t.Helper()
	var log string
	path := "/api/v1/runs/" + runID + "/steps/" + step + "/log"
	if attempt > 0 {
		path += fmt.Sprintf("?attempt=%d", attempt)
	}
	if code := s.do(t, "GET", path, "", nil, &log); code != 200 {
		t.Fatalf("log of %s: %d %s", step, code, log)
	}
	loc := endLineRe.FindStringIndex(log)
	if loc == nil {
		t.Fatalf("log of %s does not end with the agent's closing line: %q", step, tail(log))
	}
	return log[:loc[0]]
}

func tail(s string) string {
	if len(s) > 200 {
		return "…" + s[len(s)-200:]
	}
	return s
}

type agentView struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State string `json:"state"`
}

func (s *server) agents(t *testing.T) []agentView {
	t.Helper()
	var agents []agentView
	if code := s.do(t, "GET", "/api/v1/agents", "", nil, &agents); code != 200 {
		t.Fatalf("list agents: %d", code)
	}
	return agents
}

func startAgent(t *testing.T, s *server, token, stateDir, name string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"baton-agent", "--server", s.url, "--state-dir", stateDir, "--name", name,
		"--default-image", stepImage}, extra...)
	return start(t, "agent-"+name, args, "BATON_REGISTRATION_TOKEN="+token)
}

// waitAgents waits until the server lists n agents.
func waitAgents(t *testing.T, s *server, n int) []agentView {
	t.Helper()
	var agents []agentView
	waitFor(t, 30*time.Second, fmt.Sprintf("%d agents registered", n), func() bool {
		agents = s.agents(t)
		return len(agents) == n
	})
	return agents
}

// waitFor polls cond every 50 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readAll concatenates every file under dir (the server's data dir).
func readAll(dir string) (string, error) {
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		b.Write(data)
		return err
	})
	return b.String(), err
}
