package source

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/gitauth/gitauthtest"
	"github.com/baton-ci/baton/shared/protocol"
)

// A private repository over HTTP (git http-backend with basic auth on
// loopback) checks out with the credentials, pinned to a commit; without
// them it fails naming the repository; the token is in neither the log,
// the error nor the checkout's .git.
func TestGitCheckoutPrivateRepository(t *testing.T) {
	const token = "glpat-privateToken0123456789"
	repo, commits := gitRepo(t)
	srv := gitauthtest.Start(t, t.TempDir(), "oauth2", token)
	url := srv.Publish(t, repo, "team/app")
	src := &protocol.Source{Type: "git", URL: url, Commit: commits[0]}

	dest := t.TempDir()
	var log bytes.Buffer
	head, err := Prepare(context.Background(), Options{}, src, &protocol.GitCredentials{Username: "oauth2", Password: token}, dest, &log)
	if err != nil || head != commits[0] || tree(t, dest) != "app.txt=version 1" {
		t.Fatalf("checkout: %v at %s, tree %q\n%s", err, head, tree(t, dest), log.String())
	}
	gitDir, _ := readTree(filepath.Join(dest, ".git"))
	if strings.Contains(gitDir, token) || strings.Contains(log.String(), token) {
		t.Error("the token is in the checkout's .git or the log")
	}

	log.Reset()
	_, err = Prepare(context.Background(), Options{}, src, nil, t.TempDir(), &log)
	if err == nil || !strings.Contains(err.Error(), url) {
		t.Fatalf("without credentials: %v, want an error naming %s", err, url)
	}
	_, err = Prepare(context.Background(), Options{}, src, &protocol.GitCredentials{Username: "oauth2", Password: token + "-revoked"}, t.TempDir(), &log)
	if err == nil || strings.Contains(err.Error(), token) || strings.Contains(log.String(), token) {
		t.Fatalf("with a wrong token: %v (log %q): want a failure that does not show it", err, log.String())
	}
}

// readTree concatenates the files under dir.
func readTree(dir string) (string, error) {
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
