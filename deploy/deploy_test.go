// Package deploy_test checks what deploy/ ships: the container images
// (deploy/docker), the Compose file (deploy/compose), the Kubernetes
// manifests (deploy/kubernetes) and the systemd unit and scripts
// (deploy/systemd). Tests that need a tool (Docker, docker-compose,
// systemd-analyze) fail when it is missing and CI=true; elsewhere they skip
// and say so.
package deploy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// repoRoot is the repository's root directory (tests run in deploy/).
var repoRoot = func() string {
	root, err := filepath.Abs("..")
	if err != nil {
		panic(err)
	}
	return root
}()

func TestMain(m *testing.M) {
	code := m.Run()
	built.cleanup()
	os.Exit(code)
}

// need fails the test when tool is missing under CI=true, and skips it
// loudly otherwise.
func need(t *testing.T, tool string, probe ...string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		missing(t, fmt.Sprintf("%s is not installed", tool))
		return
	}
	if len(probe) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, tool, probe...).CombinedOutput(); err != nil {
			missing(t, fmt.Sprintf("%s %s failed: %v\n%s", tool, strings.Join(probe, " "), err, out))
		}
	}
}

func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", why)
	}
	t.Skipf("SKIPPING: %s (with CI=true this fails)", why)
}

// command runs name with args in dir (relative to the repository root)
// with env added to the environment, bounded by timeout, and returns its
// combined output.
func command(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = filepath.Join(repoRoot, dir)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: timed out after %s: %w", name, strings.Join(args, " "), timeout, err)
	}
	return out.String(), err
}

// must is command that fails the test on an error.
func must(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := command(t, timeout, dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// images are the images `make images` built for this test process, under
// tags of their own (other checkouts may share the Docker engine), and the
// binaries it built.
type images struct {
	once          sync.Once
	err           error
	bin           string
	server, agent string
}

var built images

// images builds both images once per test process with `make images`,
// and the default step image baton/busybox:latest with build-image.
func buildImages(t *testing.T) *images {
	t.Helper()
	need(t, "docker", "info")
	need(t, "make")
	built.once.Do(func() {
		tag := "test-" + randomHex(6)
		built.server, built.agent = "baton/server:"+tag, "baton/agent:"+tag
		dir, err := os.MkdirTemp("", "baton-deploy-bin")
		if err != nil {
			built.err = err
			return
		}
		built.bin = dir
		started := time.Now()
		out, err := command(t, 3*time.Minute, ".", nil, "make", "images", "BIN="+dir, "IMAGE_TAG="+tag, "VERSION=deploy-test")
		if err != nil {
			built.err = fmt.Errorf("make images: %v\n%s", err, out)
			return
		}
		t.Logf("make images took %s", time.Since(started).Round(time.Millisecond))
		out, err = command(t, time.Minute, ".", nil, filepath.Join(dir, "baton-agent"), "build-image")
		if err != nil {
			built.err = fmt.Errorf("baton-agent build-image (is busybox-static installed?): %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return &built
}

func (i *images) cleanup() {
	if i.server != "" {
		exec.Command("docker", "image", "rm", "-f", i.server, i.agent).Run()
	}
	if i.bin != "" {
		os.RemoveAll(i.bin)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// readFile reads a file of the repository.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
