package deploy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

const composeDir = "deploy/compose"

// composeEnv is what docker-compose.yml interpolates, for a test.
func composeEnv(t *testing.T, img *images, admin, publish, work string) []string {
	t.Helper()
	return []string{
		"DOCKER_GID=" + socketGID(t),
		"BATON_ADMIN_TOKEN=" + admin,
		"BATON_POSTGRES_PASSWORD=unused-" + randomHex(4),
		"BATON_SERVER_IMAGE=" + img.server,
		"BATON_AGENT_IMAGE=" + img.agent,
		"BATON_PUBLISH=" + publish,
		"BATON_WORK_DIR=" + work,
		"BATON_AGENT_STOP_GRACE=30s",
	}
}

// TestComposeConfig validates the Compose file and its SQLite override with
// docker-compose itself, and checks that the variables without a default
// are asked for.
func TestComposeConfig(t *testing.T) {
	t.Parallel()
	need(t, "docker-compose", "version")
	env := []string{"DOCKER_GID=999", "BATON_ADMIN_TOKEN=bat_x", "BATON_POSTGRES_PASSWORD=secret"}
	full := must(t, time.Minute, composeDir, env, "docker-compose", "-f", "docker-compose.yml", "config")
	for _, want := range []string{
		"postgres://baton:secret@postgres:5432/baton", "condition: service_healthy", "/var/run/docker.sock:/var/run/docker.sock",
		"/var/lib/baton-work:/var/lib/baton-work", "agent-1-state:/var/lib/baton-agent", "agent-2-state:/var/lib/baton-agent",
		"127.0.0.1:8484:8484", "stop_grace_period: 11m", "no-new-privileges:true", "read_only: true", "'999'",
	} {
		if !strings.Contains(full, want) {
			t.Errorf("docker-compose config lacks %q:\n%s", want, full)
		}
	}
	sqlite := must(t, time.Minute, composeDir, env, "docker-compose", "-f", "docker-compose.yml", "-f", "docker-compose.sqlite.yml", "config")
	if !strings.Contains(sqlite, "BATON_DB: ''") {
		t.Errorf("the SQLite override does not empty BATON_DB:\n%s", sqlite)
	}
	for _, v := range []string{"DOCKER_GID", "BATON_ADMIN_TOKEN", "BATON_POSTGRES_PASSWORD"} {
		var rest []string
		for _, kv := range env {
			if !strings.HasPrefix(kv, v+"=") {
				rest = append(rest, kv)
			}
		}
		rest = append(rest, v+"=")
		out, err := command(t, time.Minute, composeDir, rest, "docker-compose", "-f", "docker-compose.yml", "config", "-q")
		if err == nil || !strings.Contains(out, "set "+v) {
			t.Errorf("without %s: err %v, output:\n%s", v, err, out)
		}
	}
}

// TestComposeRunsARunbook starts the Compose file's server (SQLite override:
// the postgres image cannot be pulled here) and both agents from the images
// of `make images`, registers the agents, runs examples/hello through them,
// and stops an agent, which drains and exits 0.
func TestComposeRunsARunbook(t *testing.T) {
	need(t, "docker-compose", "version")
	img := buildImages(t)
	project := "batontest" + randomHex(4)
	admin := "bat_" + randomHex(16)
	publish := freeLoopback(t)
	// A short path: a step's cacher socket path in it must fit in 107 bytes.
	work, err := os.MkdirTemp("", "bw")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(work, 65532, 65532); err != nil {
		missing(t, fmt.Sprintf("cannot give the work dir to uid 65532 (run as root): %v", err))
	}
	env := composeEnv(t, img, admin, publish, work)
	compose := func(timeout time.Duration, extra []string, args ...string) string {
		t.Helper()
		all := append([]string{"-p", project, "-f", "docker-compose.yml", "-f", "docker-compose.sqlite.yml"}, args...)
		return must(t, timeout, composeDir, append(env, extra...), "docker-compose", all...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := command(t, time.Minute, composeDir, env, "docker-compose", "-p", project, "-f", "docker-compose.yml",
				"-f", "docker-compose.sqlite.yml", "logs", "--no-color")
			t.Logf("---- docker-compose logs ----\n%s", out)
		}
		if out, err := command(t, 2*time.Minute, composeDir, env, "docker-compose", "-p", project, "-f", "docker-compose.yml",
			"-f", "docker-compose.sqlite.yml", "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
		os.RemoveAll(work)
	})

	started := time.Now()
	compose(2*time.Minute, nil, "up", "-d", "--no-deps", "server")
	url := "http://" + publish
	waitHTTP(t, url+"/readyz", time.Minute)
	api := &adminClient{t: t, url: url, token: admin}
	var reg struct{ Token string }
	api.do("POST", "/api/v1/registration-tokens", `{"description":"compose test"}`, http.StatusCreated, &reg)
	compose(2*time.Minute, []string{"BATON_REGISTRATION_TOKEN=" + reg.Token}, "up", "-d", "--no-deps", "agent-1", "agent-2")

	// Both agents register and open their control channels.
	deadline := time.Now().Add(time.Minute)
	for {
		var agents []struct {
			Name      string
			State     string
			Connected bool
		}
		api.do("GET", "/api/v1/agents", "", http.StatusOK, &agents)
		ready := 0
		for _, a := range agents {
			if a.State == "enabled" && a.Connected && strings.HasPrefix(a.Name, "compose-agent-") {
				ready++
			}
		}
		if ready == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agents not both connected within a minute: %+v", agents)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("server and two agents up in %s", time.Since(started).Round(time.Millisecond))

	runbook := string(readFile(t, "examples/hello/runbook.yml"))
	var run struct{ ID, State string }
	api.doYAML("/api/v1/runs?project=hello", runbook, &run)
	deadline = time.Now().Add(90 * time.Second)
	var final struct {
		State string
		Steps []struct {
			Name, State, Error string
			AgentID            string `json:"agent_id"`
		}
	}
	for {
		api.do("GET", "/api/v1/runs/"+run.ID, "", http.StatusOK, &final)
		if final.State == "succeeded" || final.State == "failed" || final.State == "cancelled" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s still %s after 90s: %+v", run.ID, final.State, final.Steps)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if final.State != "succeeded" {
		t.Fatalf("run %s ended %s: %+v", run.ID, final.State, final.Steps)
	}
	log := api.text("/api/v1/runs/" + run.ID + "/steps/summary/log")
	if !strings.Contains(log, "succeeded") {
		t.Errorf("summary log:\n%s", log)
	}
	t.Logf("runbook succeeded %s after start", time.Since(started).Round(time.Millisecond))

	// SIGTERM drains the agent: it exits 0 and the server shows it draining.
	compose(time.Minute, nil, "stop", "-t", "30", "agent-1")
	id := strings.TrimSpace(compose(30*time.Second, nil, "ps", "-q", "agent-1"))
	if code := strings.TrimSpace(must(t, 30*time.Second, ".", nil, "docker", "inspect", "-f", "{{.State.ExitCode}}", id)); code != "0" {
		t.Errorf("agent-1 exited %s after docker stop, want 0 (drained)", code)
	}
}

// socketGID is the group of the Docker socket, which the agents are given.
func socketGID(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(must(t, 10*time.Second, ".", nil, "stat", "-c", "%g", "/var/run/docker.sock"))
}

// freeLoopback returns a loopback address whose port was free just now.
func freeLoopback(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// adminClient calls the admin API with the admin token.
type adminClient struct {
	t     *testing.T
	url   string
	token string
}

func (c *adminClient) request(method, path, contentType, body string) (*http.Response, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (c *adminClient) do(method, path, body string, want int, into any) {
	c.t.Helper()
	resp, b := c.request(method, path, "application/json", body)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: %s, want %d: %s", method, path, resp.Status, want, b)
	}
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

func (c *adminClient) doYAML(path, body string, into any) {
	c.t.Helper()
	resp, b := c.request("POST", path, "application/yaml", body)
	if resp.StatusCode != http.StatusCreated {
		c.t.Fatalf("POST %s: %s: %s", path, resp.Status, b)
	}
	if err := json.Unmarshal(b, into); err != nil {
		c.t.Fatalf("POST %s: %v: %s", path, err, b)
	}
}

func (c *adminClient) text(path string) string {
	c.t.Helper()
	resp, b := c.request("GET", path, "", "")
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	return string(b)
}
