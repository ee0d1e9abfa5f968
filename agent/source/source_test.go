package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"github.com/baton-ci/baton/shared/gitauth/gitauthtest"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/protocol"
)

// gitRepo makes a repository with two commits and returns its path and the
// commit ids, oldest first.
func gitRepo(t *testing.T) (string, []string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("git is required when CI=true")
		}
		t.Skip("SKIPPING: git is not installed")
	}
	dir := t.TempDir()
	git := func(args ...string) string { return gitauthtest.Git(t, dir, args...) }
	git("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "app.txt"), []byte("version 1\n"), 0o644)
	git("add", ".")
	git("commit", "-q", "-m", "one")
	first := git("rev-parse", "HEAD")
	os.WriteFile(filepath.Join(dir, "app.txt"), []byte("version 2\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "new.txt"), []byte("added later\n"), 0o644)
	git("add", ".")
	git("commit", "-q", "-m", "two")
	return dir, []string{first, git("rev-parse", "HEAD")}
}

// tree lists dest's files (without .git) with their contents.
func tree(t *testing.T, dest string) string {
	t.Helper()
	var out []string
	filepath.WalkDir(dest, func(path string, d os.DirEntry, err error) error {
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dest, path)
			b, _ := os.ReadFile(path)
			out = append(out, rel+"="+strings.TrimSpace(string(b)))
		}
		return nil
	})
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestGitCheckoutAtCommitAndRef(t *testing.T) {
	repo, commits := gitRepo(t)
	opts := Options{AllowLocal: true}
	for _, c := range []struct {
		src  protocol.Source
		tree string
		head string
	}{
		{protocol.Source{Type: "git", URL: "file://" + repo, Commit: commits[0]}, "app.txt=version 1", commits[0]},
		{protocol.Source{Type: "git", URL: "file://" + repo, Commit: commits[0][:12]}, "app.txt=version 1", commits[0]},
		{protocol.Source{Type: "git", URL: "file://" + repo, Ref: "main"}, "app.txt=version 2 new.txt=added later", commits[1]},
	} {
		dest := t.TempDir()
		var log bytes.Buffer
		head, err := Prepare(context.Background(), opts, &c.src, nil, dest, &log)
		if err != nil {
			t.Fatalf("%+v: %v\n%s", c.src, err, log.String())
		}
		if got := tree(t, dest); got != c.tree || head != c.head {
			t.Errorf("%+v: tree %q at %s, want %q at %s", c.src, got, head, c.tree, c.head)
		}
	}
	_, err := Prepare(context.Background(), Options{}, &protocol.Source{Type: "git", URL: "file://" + repo}, nil, t.TempDir(), io.Discard)
	if !errors.Is(err, ErrLocalRefused) {
		t.Errorf("file:// without --allow-local-sources: %v", err)
	}
	_, err = Prepare(context.Background(), opts, &protocol.Source{Type: "git", URL: "file://" + repo, Commit: "0123456789abcdef"}, nil, t.TempDir(), io.Discard)
	if err == nil {
		t.Error("an unknown commit checked out")
	}
}

func TestCopySkipsLinksOutOfTheTree(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("a\n"), 0o644)
	os.Mkdir(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "b.txt"), []byte("b\n"), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(src, "escape"))
	os.Symlink("a.txt", filepath.Join(src, "inside"))
	dest := t.TempDir()
	var log bytes.Buffer
	if _, err := Prepare(context.Background(), Options{AllowLocal: true}, &protocol.Source{Type: "copy", Path: src}, nil, dest, &log); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, dest); got != "a.txt=a inside=a sub/b.txt=b" {
		t.Errorf("copied tree %q", got)
	}
	if !strings.Contains(log.String(), "skipped escape") {
		t.Errorf("log %q does not say the outside link was skipped", log.String())
	}
	if _, err := Prepare(context.Background(), Options{}, &protocol.Source{Type: "copy", Path: src}, nil, t.TempDir(), io.Discard); !errors.Is(err, ErrLocalRefused) {
		t.Errorf("copy without --allow-local-sources: %v", err)
	}
}

func tarball(t *testing.T, gz bool, entries ...[2]string) string {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		tw.WriteHeader(&tar.Header{Name: e[0], Mode: 0o644, Size: int64(len(e[1])), Typeflag: tar.TypeReg})
		tw.Write([]byte(e[1]))
	}
	tw.Close()
	if zw != nil {
		zw.Close()
	}
	path := filepath.Join(t.TempDir(), "src.tar")
	os.WriteFile(path, buf.Bytes(), 0o644)
	return path
}

func TestTarballUnpacksSafely(t *testing.T) {
	opts := Options{AllowLocal: true}
	for _, gz := range []bool{false, true} {
		dest := t.TempDir()
		src := protocol.Source{Type: "tarball", Path: tarball(t, gz, [2]string{"x/one.txt", "1"}, [2]string{"two.txt", "2"})}
		if _, err := Prepare(context.Background(), opts, &src, nil, dest, io.Discard); err != nil {
			t.Fatal(err)
		}
		if got := tree(t, dest); got != "two.txt=2 x/one.txt=1" {
			t.Errorf("gzip %v: tree %q", gz, got)
		}
	}
	for _, name := range []string{"../evil.txt", "/etc/evil", "a/../../evil"} {
		src := protocol.Source{Type: "tarball", Path: tarball(t, false, [2]string{name, "x"})}
		if _, err := Prepare(context.Background(), opts, &src, nil, t.TempDir(), io.Discard); err == nil || !strings.Contains(err.Error(), "outside") {
			t.Errorf("entry %q: %v, want refused", name, err)
		}
	}
	big := protocol.Source{Type: "tarball", Path: tarball(t, false, [2]string{"big", strings.Repeat("x", 2000)})}
	if _, err := Prepare(context.Background(), Options{AllowLocal: true, MaxTarball: 1000}, &big, nil, t.TempDir(), io.Discard); err == nil {
		t.Error("a tarball over the limit unpacked")
	}
}

func TestSourceValidation(t *testing.T) {
	for _, c := range []struct {
		src protocol.Source
		ok  bool
	}{
		{protocol.Source{Type: "git", URL: "https://example.com/r.git", Ref: "main"}, true},
		{protocol.Source{Type: "git", URL: "git@example.com:org/r.git"}, true},
		{protocol.Source{Type: "git", URL: "-uhoh"}, false},
		{protocol.Source{Type: "git", URL: "https://example.com/r.git", Ref: "a..b"}, false},
		{protocol.Source{Type: "git", URL: "https://example.com/r.git", Commit: "xyz"}, false},
		{protocol.Source{Type: "copy", Path: "relative"}, false},
		{protocol.Source{Type: "copy", Path: "/a/../b"}, false},
		{protocol.Source{Type: "tarball", URL: "ftp://x/y"}, false},
		{protocol.Source{Type: "svn"}, false},
		{protocol.Source{Type: "none"}, true},
	} {
		if err := c.src.Validate("source"); (err == nil) != c.ok {
			t.Errorf("%+v: %v, want ok %v", c.src, err, c.ok)
		}
	}
}
