package gitcache_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-ci/baton/server/gitcache"
	"github.com/baton-ci/baton/shared/gitauth/gitauthtest"
	"github.com/baton-ci/baton/shared/protocol"
)

// commit makes a repository with runbook.yml and returns it and the commit.
func commit(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "runbook.yml"), []byte("steps: []\n"), 0o644)
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"commit", "-q", "-m", "one"}} {
		gitauthtest.Git(t, dir, args...)
	}
	return dir, gitauthtest.Git(t, dir, "rev-parse", "HEAD")
}

// The mirror of a private repository is cloned and fetched with its
// credentials, and only with them; its errors name the repository and say
// it refused access, without the token; nothing on disk holds the token.
func TestPrivateMirror(t *testing.T) {
	t.Parallel()
	const token = "ghs_mirrorToken0123456789abcdef"
	work, head := commit(t)
	srv := gitauthtest.Start(t, t.TempDir(), "x-access-token", token)
	url := srv.Publish(t, work, "o/r")
	dir := t.TempDir()
	cache, err := gitcache.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, cred := range []*protocol.GitCredentials{nil, {Username: "x-access-token", Password: "ghs_wrongToken000000"}} {
		err := cache.Update(ctx, url, cred, head)
		if err == nil || !strings.Contains(err.Error(), "fetch "+url) || !strings.Contains(err.Error(), "refused access") ||
			strings.Contains(err.Error(), "ghs_") {
			t.Errorf("update with %+v: %v, want a refusal naming %s", cred, err, url)
		}
	}
	good := &protocol.GitCredentials{Username: "x-access-token", Password: token}
	for range 2 { // clone, then fetch
		if err := cache.Update(ctx, url, good, head); err != nil {
			t.Fatalf("update with the token: %v", err)
		}
	}
	if got, err := cache.Read(ctx, url, head, "runbook.yml"); err != nil || string(got) != "steps: []\n" {
		t.Fatalf("read: %q %v", got, err)
	}
	if got, err := cache.Resolve(ctx, url, "main"); err != nil || got != head {
		t.Fatalf("resolve: %q %v", got, err)
	}
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(path); strings.Contains(string(b), token) || strings.Contains(string(b), "extraHeader") {
				t.Errorf("%s holds the credentials", path)
			}
		}
		return nil
	})
}
