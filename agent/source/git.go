package source

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/baton-ci/baton/shared/gitauth"
	"github.com/baton-ci/baton/shared/protocol"
)

// gitCheckout fetches only what the step needs: the pinned commit (or the
// ref's tip) at depth 1, falling back to a full fetch when the server does
// not serve commits by id; then it checks the commit out detached and makes
// sure it is the one asked for.
func gitCheckout(ctx context.Context, opts Options, src *protocol.Source, cred *protocol.GitCredentials, dest string, log io.Writer) (string, error) {
	if strings.HasPrefix(src.URL, "file:") && !opts.AllowLocal {
		return "", ErrLocalRefused
	}
	git := opts.Git
	if git == "" {
		var err error
		if git, err = exec.LookPath("git"); err != nil {
			return "", fmt.Errorf("git source: git is not installed on this agent: %w", err)
		}
	}
	sess, err := gitauth.New(src.URL, cred)
	if err != nil {
		return "", fmt.Errorf("git source: %w", err)
	}
	defer sess.Close()
	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, git, append([]string{"-C", dest}, args...)...)
		// No prompts, no system or user config that could run helpers;
		// the credentials, if any, in the environment of git alone.
		cmd.Env = sess.Env(os.Environ())
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if err != nil {
			return "", fmt.Errorf("git %s of %s: %w: %s", args[0], redactURL(src.URL), err, gitauth.Explain(sess.Mask(strings.TrimSpace(out.String()))))
		}
		return strings.TrimSpace(out.String()), nil
	}
	want := src.Commit
	if want == "" {
		want = src.Ref
	}
	if want == "" {
		want = "HEAD"
	}
	fmt.Fprintf(log, "baton: git source %s at %s\n", redactURL(src.URL), want)
	if _, err := run("init", "-q"); err != nil {
		return "", err
	}
	if _, err := run("remote", "add", "origin", src.URL); err != nil {
		return "", err
	}
	if _, err := run("fetch", "-q", "--depth", "1", "origin", want); err != nil {
		if src.Commit == "" {
			return "", err
		}
		// Not every server hands out a commit by id: fetch the history.
		fmt.Fprintf(log, "baton: shallow fetch of %s refused; fetching the full history\n", src.Commit)
		if _, err := run("fetch", "-q", "origin"); err != nil {
			return "", err
		}
		if _, err := run("checkout", "-q", "--detach", src.Commit); err != nil {
			return "", err
		}
	} else if _, err := run("checkout", "-q", "--detach", "FETCH_HEAD"); err != nil {
		return "", err
	}
	head, err := run("rev-parse", "HEAD")
	if err != nil {
		return "", err
	}
	if src.Commit != "" && !strings.HasPrefix(head, src.Commit) {
		return "", fmt.Errorf("git source: checked out %s, not the commit asked for (%s)", head, src.Commit)
	}
	fmt.Fprintf(log, "baton: checked out %s\n", head)
	return head, nil
}

// redactURL drops credentials from a URL before it is logged.
func redactURL(raw string) string {
	if i := strings.Index(raw, "://"); i >= 0 {
		rest := raw[i+3:]
		if at := strings.IndexByte(rest, '@'); at >= 0 && at < strings.IndexAny(rest+"/", "/") {
			return raw[:i+3] + "***@" + rest[at+1:]
		}
	}
	return raw
}
