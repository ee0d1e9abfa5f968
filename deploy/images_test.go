package deploy_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// imageConfig is the part of `docker image inspect` the tests read.
type imageConfig struct {
	Config struct {
		User         string
		Env          []string
		Entrypoint   []string
		Cmd          []string
		ExposedPorts map[string]struct{}
		Volumes      map[string]struct{}
		StopSignal   string
	}
}

func inspectImage(t *testing.T, image string) imageConfig {
	t.Helper()
	out := must(t, 30*time.Second, ".", nil, "docker", "image", "inspect", image)
	var got []imageConfig
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 {
		t.Fatalf("docker image inspect %s: %v\n%s", image, err, out)
	}
	return got[0]
}

// TestImages builds both images with `make images` and checks that each
// runs its binary as uid 65532, with the defaults the docs promise.
func TestImages(t *testing.T) {
	img := buildImages(t)
	for _, c := range []struct {
		image, binary, usage string
		env                  []string
		volume, port         string
	}{
		{img.server, "/usr/local/bin/baton-server", "Usage of baton-server", []string{"BATON_ADDR=0.0.0.0:8484", "BATON_DATA_DIR=/var/lib/baton"}, "/var/lib/baton", "8484/tcp"},
		{img.agent, "/usr/local/bin/baton-agent", "Usage of baton-agent", []string{"BATON_STATE_DIR=/var/lib/baton-agent", "BATON_WORK_DIR=/var/lib/baton-work"}, "/var/lib/baton-agent", ""},
	} {
		t.Run(c.binary[strings.LastIndex(c.binary, "/")+1:], func(t *testing.T) {
			cfg := inspectImage(t, c.image).Config
			if cfg.User != "65532:65532" {
				t.Errorf("image user %q, want 65532:65532", cfg.User)
			}
			if !slices.Equal(cfg.Entrypoint, []string{c.binary}) || len(cfg.Cmd) != 0 {
				t.Errorf("entrypoint %q cmd %q, want [%s] and no cmd", cfg.Entrypoint, cfg.Cmd, c.binary)
			}
			for _, kv := range c.env {
				if !slices.Contains(cfg.Env, kv) {
					t.Errorf("env %q lacks %s", cfg.Env, kv)
				}
			}
			if _, ok := cfg.Volumes[c.volume]; !ok {
				t.Errorf("volumes %v lack %s", cfg.Volumes, c.volume)
			}
			if _, ok := cfg.ExposedPorts[c.port]; c.port != "" && !ok {
				t.Errorf("exposed ports %v lack %s", cfg.ExposedPorts, c.port)
			}
			if cfg.StopSignal != "SIGTERM" {
				t.Errorf("stop signal %q, want SIGTERM (the agent drains on it)", cfg.StopSignal)
			}
			// The static binary runs on scratch and prints its usage.
			out := must(t, 30*time.Second, ".", nil, "docker", "run", "--rm", "--network", "none", c.image, "--help")
			if !strings.Contains(out, c.usage) {
				t.Errorf("docker run %s --help printed no usage:\n%s", c.image, out)
			}
			// The CA bundle, users and a sticky /tmp are in the image.
			id := strings.TrimSpace(must(t, 30*time.Second, ".", nil, "docker", "create", c.image))
			defer command(t, 30*time.Second, ".", nil, "docker", "rm", "-f", id)
			listing := must(t, 30*time.Second, ".", nil, "sh", "-c", "docker export "+id+" | tar -tvf -")
			for path, mode := range map[string]string{
				"etc/ssl/certs/ca-certificates.crt": "-rw-r--r-- root/root",
				"etc/passwd":                        "-rw-r--r-- root/root",
				"etc/group":                         "-rw-r--r-- root/root",
				"tmp/":                              "drwxrwxrwt root/root",
				c.volume[1:] + "/":                  "drwx------ baton/baton",
				c.binary[1:]:                        "-rwxr-xr-x root/root",
			} {
				if !hasEntry(listing, path, mode) {
					t.Errorf("image file system lacks %s %s:\n%s", mode, path, listing)
				}
			}
			passwd := must(t, 30*time.Second, ".", nil, "sh", "-c", "docker cp "+id+":/etc/passwd - | tar -xOf -")
			if !strings.Contains(passwd, "baton:x:65532:65532:") {
				t.Errorf("/etc/passwd lacks the baton user:\n%s", passwd)
			}
		})
	}
}

// TestServerImageServes starts the server image with its defaults only:
// it listens on 0.0.0.0:8484, keeps its data in /var/lib/baton and runs
// as uid 65532.
func TestServerImageServes(t *testing.T) {
	img := buildImages(t)
	id := strings.TrimSpace(must(t, 30*time.Second, ".", nil, "docker", "run", "-d", "-p", "127.0.0.1::8484",
		"-e", "BATON_ADMIN_TOKEN=bat_"+randomHex(16), img.server))
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := command(t, 30*time.Second, ".", nil, "docker", "logs", id)
			t.Logf("---- server container logs ----\n%s", out)
		}
		command(t, 30*time.Second, ".", nil, "docker", "rm", "-f", "-v", id)
	})
	addr := strings.TrimSpace(strings.Split(must(t, 30*time.Second, ".", nil, "docker", "port", id, "8484/tcp"), "\n")[0])
	waitHTTP(t, "http://"+addr+"/readyz", 30*time.Second)
	top := must(t, 30*time.Second, ".", nil, "docker", "top", id, "-o", "pid,uid,args")
	if !strings.Contains(top, "65532") {
		t.Errorf("server process does not run as uid 65532:\n%s", top)
	}
	logs := must(t, 30*time.Second, ".", nil, "docker", "logs", id)
	for _, want := range []string{"addr=0.0.0.0:8484", "data-dir=/var/lib/baton ", "db=sqlite"} {
		if !strings.Contains(logs, want) {
			t.Errorf("server logs lack %q:\n%s", want, logs)
		}
	}
}

// waitHTTP polls url until it answers 200, up to timeout.
func waitHTTP(t *testing.T, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s did not answer 200 within %s (last: %s)", url, timeout, last)
}

// hasEntry reports whether a `tar -tv` listing has path with mode and owner.
func hasEntry(listing, path, modeOwner string) bool {
	for _, line := range strings.Split(listing, "\n") {
		if strings.HasSuffix(line, " "+path) && strings.HasPrefix(line, modeOwner+" ") {
			return true
		}
	}
	return false
}
