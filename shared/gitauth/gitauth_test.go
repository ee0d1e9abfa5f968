package gitauth_test

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/gitauth"
	"github.com/baton-ci/baton/shared/gitauth/gitauthtest"
	"github.com/baton-ci/baton/shared/protocol"
)

const token = "ghp_s3cretTokenValue1234567890"

// workRepo makes a repository with one commit.
func workRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"commit", "-q", "-m", "one"}} {
		if args[0] == "add" {
			os.WriteFile(filepath.Join(dir, "runbook.yml"), []byte("steps: []\n"), 0o644)
		}
		gitauthtest.Git(t, dir, args...)
	}
	return dir
}

func clone(t *testing.T, url string, c *protocol.GitCredentials) (string, error) {
	t.Helper()
	s, err := gitauth.New(url, c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dest := filepath.Join(t.TempDir(), "clone")
	cmd := exec.Command("git", "clone", "-q", "--", url, dest)
	cmd.Env = s.Env(append(os.Environ(), "GIT_ASKPASS=/bin/echo", "GIT_TRACE=1"))
	out, err := cmd.CombinedOutput()
	if err == nil {
		cfg, _ := os.ReadFile(filepath.Join(dest, ".git", "config"))
		if strings.Contains(string(cfg), token) || strings.Contains(string(cfg), "extraHeader") {
			t.Errorf("the clone's config holds the credentials:\n%s", cfg)
		}
	}
	return s.Mask(string(out)), err
}

// A private repository over HTTP on loopback clones with the credentials
// and only with them; nothing of the token lands in the clone's config.
func TestHTTPCredentials(t *testing.T) {
	t.Parallel()
	srv := gitauthtest.Start(t, t.TempDir(), "x-access-token", token)
	url := srv.Publish(t, workRepo(t), "private")

	if out, err := clone(t, url, nil); err == nil || !strings.Contains(out, "401") && !strings.Contains(out, "Authentication failed") &&
		!strings.Contains(out, "could not read Username") {
		t.Fatalf("clone without credentials: %v %s", err, out)
	}
	if srv.Denied.Load() == 0 {
		t.Fatal("the server refused nothing")
	}
	if out, err := clone(t, url, &protocol.GitCredentials{Username: "x-access-token", Password: "wrong-token-123"}); err == nil {
		t.Fatalf("clone with a wrong token succeeded: %s", out)
	}
	if out, err := clone(t, url, &protocol.GitCredentials{Username: "x-access-token", Password: token}); err != nil {
		t.Fatalf("clone with credentials: %v %s", err, out)
	}
	if srv.Served.Load() == 0 {
		t.Fatal("nothing was served")
	}
}

func TestMaskHidesEveryForm(t *testing.T) {
	t.Parallel()
	s, err := gitauth.New("https://git.example.com/o/r.git", &protocol.GitCredentials{Username: "x-access-token", Password: token})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + token))
	got := s.Mask("fatal: header Authorization: Basic " + basic + " for https://x-access-token:" + token + "@git.example.com")
	if strings.Contains(got, token) || strings.Contains(got, basic) {
		t.Errorf("mask left the token: %s", got)
	}
	for _, kv := range s.Env(nil) {
		if strings.HasPrefix(kv, "GIT_CONFIG_KEY_0=") && kv != "GIT_CONFIG_KEY_0=http.https://git.example.com/o/r.git.extraHeader" {
			t.Errorf("header not scoped to the repository: %s", kv)
		}
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		url  string
		cred protocol.GitCredentials
		want string
	}{
		{"http://git.example.com/o/r.git", protocol.GitCredentials{Username: "u", Password: token}, "plain http"},
		{"https://git.example.com/o/r.git", protocol.GitCredentials{SSHKey: "key"}, "password_secret"},
		{"git@git.example.com:o/r.git", protocol.GitCredentials{Username: "u", Password: token}, "ssh_key_secret"},
		{"git://git.example.com/o/r.git", protocol.GitCredentials{Username: "u", Password: token}, "only over https or ssh"},
		{"https://git.example.com/o/r.git", protocol.GitCredentials{Username: "u", Password: "a\nb-c-d-e"}, "line break"},
	} {
		s, err := gitauth.New(c.url, &c.cred)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), token) {
			t.Errorf("%s %+v: %v, want an error saying %q", c.url, c.cred, err, c.want)
		}
		s.Close()
	}
}

// Over SSH, git runs ssh with the key in a private 0600 file, host keys
// checked against the given known_hosts, and the file is gone after Close.
func TestSSHKeyFile(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	record := filepath.Join(bin, "args")
	// A stand-in ssh that records its arguments, the key and its mode.
	script := "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > " + record + "\n" +
		"key=$(echo \"$@\" | sed -n 's/.*-i \\([^ ]*\\).*/\\1/p')\nstat -c %a \"$key\" >> " + record + "\ncat \"$key\" >> " + record + "\nexit 255\n"
	os.WriteFile(filepath.Join(bin, "ssh"), []byte(script), 0o755)
	const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"
	s, err := gitauth.New("git@git.example.com:o/r.git", &protocol.GitCredentials{SSHKey: key, KnownHosts: "git.example.com ssh-ed25519 AAAAC3Nza"})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("git", "ls-remote", "git@git.example.com:o/r.git")
	cmd.Env = s.Env(append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH")))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("ls-remote through a failing ssh succeeded: %s", out)
	}
	b, err := os.ReadFile(record)
	if err != nil {
		t.Fatalf("ssh was not run: %v (%s)", err, out)
	}
	args := string(b)
	for _, want := range []string{"IdentitiesOnly=yes", "StrictHostKeyChecking=yes", "BatchMode=yes", "UserKnownHostsFile=", "\n600\n", key} {
		if !strings.Contains(args, want) {
			t.Errorf("ssh got %q, want %q in it", args, want)
		}
	}
	keyPath := strings.TrimSpace(strings.SplitN(strings.SplitN(args, "-i\n", 2)[1], "\n", 2)[0])
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(keyPath); !os.IsNotExist(err) {
		t.Errorf("key file %s still there after Close: %v", keyPath, err)
	}
}

// A repository over real SSH (sshd on loopback): the deploy key with the
// host's known_hosts line clones; a host key that does not match, a host
// that is not known, or another key is refused, and no key file is left.
func TestSSHCredentials(t *testing.T) {
	t.Parallel()
	srv := gitauthtest.StartSSH(t)
	repo := workRepo(t)
	url := srv.URL(repo)
	if _, err := clone(t, url, &protocol.GitCredentials{SSHKey: srv.Key, KnownHosts: srv.KnownHosts}); err != nil {
		t.Fatalf("clone with the deploy key: %v", err)
	}
	// The same host, with another machine's (valid) key.
	wrongHost := strings.Fields(srv.KnownHosts)[0] + " ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	for _, c := range []struct {
		what string
		cred protocol.GitCredentials
		want string
	}{
		{"another host key", protocol.GitCredentials{SSHKey: srv.Key, KnownHosts: wrongHost}, "Host key verification failed"},
		{"an unknown host", protocol.GitCredentials{SSHKey: srv.Key}, "Host key verification failed"},
		{"another key", protocol.GitCredentials{SSHKey: srv.OtherKey, KnownHosts: srv.KnownHosts}, "Permission denied"},
	} {
		out, err := clone(t, url, &c.cred)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: %v %s, want %q", c.what, err, out, c.want)
		}
		if strings.Contains(out, "PRIVATE KEY") {
			t.Errorf("%s: the key is in git's output: %s", c.what, out)
		}
	}
	left, _ := filepath.Glob(filepath.Join(os.TempDir(), "baton-git-ssh-*", "id"))
	for _, f := range left {
		if b, _ := os.ReadFile(f); strings.Contains(string(b), strings.TrimSpace(srv.Key)) {
			t.Errorf("key file %s left behind", f)
		}
	}
}
