// Package gitcache keeps bare mirrors of project repositories in the
// server's data dir, so the server can read a runbook at the commit a
// webhook names without a full checkout. It shells out to git; a private
// repository's credentials reach git only through package gitauth.
package gitcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/baton-ci/baton/shared/gitauth"
	"github.com/baton-ci/baton/shared/protocol"
)

// Cache holds one mirror per repository URL under Dir.
type Cache struct {
	Dir string

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// New returns a cache in dir (created 0700).
func New(dir string) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("git cache: %w", err)
	}
	return &Cache{Dir: dir, locks: map[string]*sync.Mutex{}}, nil
}

func (c *Cache) lock(url string) func() {
	c.mu.Lock()
	l, ok := c.locks[url]
	if !ok {
		l = &sync.Mutex{}
		c.locks[url] = l
	}
	c.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func (c *Cache) path(url string) string {
	sum := sha256.Sum256([]byte(url))
	return filepath.Join(c.Dir, hex.EncodeToString(sum[:12])+".git")
}

// git runs git in dir: with sess (a fetch from the remote) the
// credentials reach git only through its environment, and git's messages
// are masked.
func git(ctx context.Context, dir string, sess *gitauth.Session, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = sess.Env(os.Environ())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %v: %s", args[0], err, gitauth.Explain(sess.Mask(strings.TrimSpace(errb.String()))))
	}
	return out.String(), nil
}

// local has no credentials: for commands that read the mirror only.
var local, _ = gitauth.New("", nil)

// Update makes the mirror of url current: cloned on first use, fetched
// after, with cred for a private repository (nil for a public one). want,
// when set, is a commit that must be present afterwards (it is fetched by
// id if the branches do not hold it, as for a pull request's head). Its
// errors name the repository and never hold the credentials.
func (c *Cache) Update(ctx context.Context, url string, cred *protocol.GitCredentials, want string) error {
	if err := c.update(ctx, url, cred, want); err != nil {
		return fmt.Errorf("fetch %s: %w", gitauth.Redact(url), err)
	}
	return nil
}

func (c *Cache) update(ctx context.Context, url string, cred *protocol.GitCredentials, want string) error {
	defer c.lock(url)()
	sess, err := gitauth.New(url, cred)
	if err != nil {
		return err
	}
	defer sess.Close()
	dir := c.path(url)
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		tmp := dir + ".tmp"
		os.RemoveAll(tmp)
		if _, err := git(ctx, c.Dir, sess, "clone", "-q", "--mirror", "--", url, tmp); err != nil {
			os.RemoveAll(tmp)
			return err
		}
		if err := os.Rename(tmp, dir); err != nil {
			return err
		}
	} else if _, err := git(ctx, dir, sess, "fetch", "-q", "--prune", "origin"); err != nil {
		return err
	}
	if want == "" {
		return nil
	}
	if _, err := git(ctx, dir, local, "cat-file", "-e", want+"^{commit}"); err == nil {
		return nil
	}
	if _, err := git(ctx, dir, sess, "fetch", "-q", "origin", want); err != nil {
		return fmt.Errorf("commit %s is not in the repository: %w", want, err)
	}
	return nil
}

// Resolve returns the commit a branch of url points at (after Update).
func (c *Cache) Resolve(ctx context.Context, url, branch string) (string, error) {
	out, err := git(ctx, c.path(url), local, "rev-parse", "--verify", "refs/heads/"+branch+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("branch %s of %s: %w", branch, url, err)
	}
	return strings.TrimSpace(out), nil
}

// Read returns a file at a commit of url (after Update).
func (c *Cache) Read(ctx context.Context, url, commit, path string) ([]byte, error) {
	if strings.HasPrefix(path, "/") || strings.Contains(path, "..") {
		return nil, fmt.Errorf("path %q must be relative to the repository root", path)
	}
	out, err := git(ctx, c.path(url), local, "show", commit+":"+path)
	if err != nil {
		return nil, fmt.Errorf("%s at %.12s: not found", path, commit)
	}
	return []byte(out), nil
}
