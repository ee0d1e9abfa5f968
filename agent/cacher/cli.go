package cacher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/baton-ci/baton/shared/artifact"
	"github.com/baton-ci/baton/shared/protocol"
)

const usage = `usage:
  cacher put <key> <path>       store a file as an artifact of this run
  cacher get <key> <path>       fetch an artifact of this run into a file
  cacher delete <key>           delete an artifact of this run
  cacher mask <value>           mask value in the rest of this step's log ("-": read it from stdin)
  cacher output <name> <value>  set an output of this step, as $BATON_OUTPUT does
  cacher trigger <runbook> [key=value...]
                                start a run of a runbook of this run's repository (or of the
                                files the run was started with), with params
keys: up to 200 characters of A-Z a-z 0-9 . _ / -, relative, without "." or ".." segments`

// Main runs the cacher command with args (without the program name) and
// returns its exit code: 0 done, 1 failed, 2 misused. Messages go to
// stderr; nothing is written to stdout.
func Main(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stderr io.Writer) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "cacher: "+format+"\n", a...)
		return code
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "exec" { // the agent's wrapper around a step's command, not for users
		return Exec(ctx, args[1:], getenv, stderr)
	}
	if args[0] == "trigger" {
		return trigger(ctx, args[1:], getenv, stderr)
	}
	want := map[string]int{"put": 3, "get": 3, "delete": 2, "mask": 2, "output": 3}
	n, known := want[args[0]]
	if !known {
		return fail(2, "unknown command %q\n%s", args[0], usage)
	}
	if len(args) != n {
		return fail(2, "%s takes %d argument(s), not %d\n%s", args[0], n-1, len(args)-1, usage)
	}
	sock := getenv(EnvSocket)
	if sock == "" {
		return fail(1, "%s is not set: cacher works only inside a Baton step", EnvSocket)
	}
	c := newClient(sock)
	var err error
	switch args[0] {
	case "put", "get", "delete":
		if err = artifact.ValidateKey(args[1]); err != nil {
			return fail(1, "%s: %v", args[0], err)
		}
		switch args[0] {
		case "put":
			err = c.put(ctx, args[1], args[2], stderr)
		case "get":
			err = c.get(ctx, args[1], args[2], stderr)
		default:
			err = c.delete(ctx, args[1], stderr)
		}
	case "mask":
		value := args[1]
		if value == "-" {
			b, rerr := io.ReadAll(io.LimitReader(stdin, maxMaskValue+1))
			if rerr != nil {
				return fail(1, "mask: read stdin: %v", rerr)
			}
			value = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		}
		err = c.call(ctx, http.MethodPost, pathMask, strings.NewReader(value), int64(len(value)), nil, nil)
	case "output":
		if err = checkOutputName(args[1]); err == nil {
			body, _ := json.Marshal(outputRequest{Name: args[1], Value: args[2]})
			err = c.call(ctx, http.MethodPost, pathOutput, bytes.NewReader(body), int64(len(body)), nil, nil)
		}
	}
	if err != nil {
		return fail(1, "%s: %v", args[0], err)
	}
	return 0
}

// client calls the step's cacher server over its socket.
type client struct {
	http *http.Client
}

func newClient(sock string) *client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		ExpectContinueTimeout: 10 * time.Second,
	}
	return &client{http: &http.Client{Transport: tr}}
}

// call sends a request and decodes a JSON answer into out (if not nil).
func (c *client) call(ctx context.Context, method, path string, body io.Reader, size int64, h http.Header, out any) error {
	resp, err := c.do(ctx, method, path, body, size, h)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return fmt.Errorf("read answer: %w", err)
		}
	}
	return nil
}

// do sends a request and returns a successful response; an error answer
// becomes an error with the message the agent sent.
func (c *client) do(ctx context.Context, method, path string, body io.Reader, size int64, h http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://cacher"+path, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if body != nil {
		req.Body, req.ContentLength = io.NopCloser(body), size
		if size == 0 {
			req.Body = http.NoBody
		}
		// The body goes out only once the agent (and through it the
		// server) starts reading it: a refusal costs no upload.
		req.Header.Set("Expect", "100-continue")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the agent is not reachable: %w", err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var pe protocol.Error
		if json.Unmarshal(b, &pe) != nil || pe.Error == "" {
			pe.Error = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
		return nil, errors.New(pe.Error)
	}
	return resp, nil
}

// put stores the file at path under key. The file is read twice: once for
// its size and SHA-256, then to send it; the server checks that what it
// received has that checksum, so a file that changed meanwhile is refused.
func (c *client) put(ctx context.Context, key, path string, stderr io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (archive a directory first, e.g. with tar)", path)
	}
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	start := time.Now()
	var a protocol.Artifact
	err = c.call(ctx, http.MethodPut, pathArtifacts+key, io.LimitReader(f, size), size,
		http.Header{protocol.HeaderSHA256: {sum}, "Content-Type": {"application/octet-stream"}}, &a)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "cacher: stored %s (%d bytes, sha256 %s) in %s\n", key, a.Size, a.SHA256, time.Since(start).Round(time.Millisecond))
	return nil
}

// get fetches key into path: into a temporary file in path's directory,
// renamed over path only once the whole content arrived and matches the
// SHA-256 the server sent.
func (c *client) get(ctx context.Context, key, path string, stderr io.Writer) error {
	if info, err := os.Stat(path); err == nil && info.IsDir() {
		return fmt.Errorf("%s is a directory: give the file to write", path)
	}
	start := time.Now()
	resp, err := c.do(ctx, http.MethodGet, pathArtifacts+key, nil, 0, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	want := resp.Header.Get(protocol.HeaderSHA256)
	if want == "" {
		return fmt.Errorf("the answer carries no %s to check the content against", protocol.HeaderSHA256)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".cacher-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing left to remove
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download broke off after %d bytes: %w", n, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fmt.Errorf("received %d bytes of %d", n, resp.ContentLength)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("content has SHA-256 %s, not the %s the server sent: it was damaged in transit; %s is unchanged", got, want, path)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "cacher: fetched %s to %s (%s bytes, sha256 %s verified) in %s\n", key, path, strconv.FormatInt(n, 10), want,
		time.Since(start).Round(time.Millisecond))
	return nil
}

func (c *client) delete(ctx context.Context, key string, stderr io.Writer) error {
	if err := c.call(ctx, http.MethodDelete, pathArtifacts+key, nil, 0, nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "cacher: deleted %s\n", key)
	return nil
}

// trigger runs `cacher trigger <runbook> [key=value...]`: it starts a
// follow-up run and prints its id on stderr.
func trigger(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "cacher: trigger takes the runbook's path, then params as key=value\n%s\n", usage)
		return 2
	}
	sock := getenv(EnvSocket)
	if sock == "" {
		fmt.Fprintf(stderr, "cacher: %s is not set: cacher works only inside a Baton step\n", EnvSocket)
		return 1
	}
	req := triggerRequest{Runbook: args[0], Params: map[string]string{}}
	for _, kv := range args[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			fmt.Fprintf(stderr, "cacher: trigger: %q is not key=value\n", kv)
			return 2
		}
		req.Params[k] = v
	}
	body, _ := json.Marshal(req)
	var out map[string]string
	if err := newClient(sock).call(ctx, http.MethodPost, pathTrigger, bytes.NewReader(body), int64(len(body)), nil, &out); err != nil {
		fmt.Fprintf(stderr, "cacher: trigger: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "cacher: started run %s\n", out["run_id"])
	return 0
}
