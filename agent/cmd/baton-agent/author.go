package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/baton-ci/baton/agent/local"
	"github.com/baton-ci/baton/shared/runbook"
)

// validate checks runbook files and prints every problem; it fails if any
// file has one. Runbook authors run it before they push.
func validate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("baton-agent validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", ".", "repository root that include paths are read from")
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: baton-agent validate RUNBOOK.yml...") }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usageError{errors.New("name at least one runbook file")}
	}
	bad := 0
	for _, file := range fs.Args() {
		if _, err := readRunbook(file, *root); err != nil {
			fmt.Fprintln(stderr, err)
			bad++
			continue
		}
		fmt.Fprintf(stdout, "%s: ok\n", file)
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d runbooks have problems", bad, fs.NArg())
	}
	return nil
}

// plan prints what a run would do, level by level, and starts nothing.
func plan(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("baton-agent plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	params := paramFlag(fs)
	rb, err := parseOne(fs, args, "[--param NAME=VALUE]... RUNBOOK.yml")
	if err != nil {
		return err
	}
	p, err := rb.Plan(params)
	if err != nil {
		return err
	}
	p.Print(stdout)
	return nil
}

// parseOne parses the flags of a command that takes one runbook file, and
// reads and validates that file.
func parseOne(fs *flag.FlagSet, args []string, usage string) (*runbook.Runbook, error) {
	root := fs.String("root", ".", "repository root that include paths are read from")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s %s\n", fs.Name(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return nil, usageError{errors.New("name one runbook file")}
	}
	return readRunbook(fs.Arg(0), *root)
}

// readRunbook reads and validates a runbook file; its includes are read
// relative to root, the repository root.
func readRunbook(file, root string) (*runbook.Runbook, error) {
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return runbook.ParseFiles(file, text, func(path string) ([]byte, error) {
		return os.ReadFile(filepath.Join(root, path))
	})
}

// test runs a runbook's whole DAG with canned step results (stub mode): no
// containers, no server. It exits non-zero unless the run ends as expected.
func test(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("baton-agent test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stubsFile := fs.String("stubs", "", "YAML file: step name to {exit_code, output, outputs, error}, or a list of them by attempt")
	expect := fs.String("expect", "succeeded", "the run state the test expects: succeeded or failed")
	params := paramFlag(fs)
	rb, err := parseOne(fs, args, "[--stubs FILE] [--param NAME=VALUE]... [--expect STATE] RUNBOOK.yml")
	if err != nil {
		return err
	}
	stubs := local.Stubs{}
	if *stubsFile != "" {
		if stubs, err = local.LoadStubs(*stubsFile); err != nil {
			return err
		}
		for name := range stubs {
			if !hasStep(rb, name) {
				return fmt.Errorf("%s: no step %q in %s", *stubsFile, name, fs.Arg(0))
			}
		}
	}
	res, err := (&local.Runner{Executor: local.StubExecutor{Stubs: stubs}, Parallel: 4, NoDelay: true}).Run(ctx, rb, params)
	if err != nil {
		return err
	}
	for _, s := range rb.Steps {
		r := res.Steps[s.Name]
		fmt.Fprintf(stdout, "%-24s %-10s", s.Name, r.State)
		if r.Reason != "" {
			fmt.Fprintf(stdout, " %s", r.Reason)
		}
		if r.Attempts > 1 {
			fmt.Fprintf(stdout, " (%d attempts)", r.Attempts)
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "run %s\n", res.State)
	if string(res.State) != *expect {
		return fmt.Errorf("run %s, expected %s", res.State, *expect)
	}
	return nil
}

func hasStep(rb *runbook.Runbook, name string) bool {
	for _, s := range rb.Steps {
		if s.Name == name {
			return true
		}
	}
	return false
}

// paramFlag registers a repeatable --param NAME=VALUE flag.
func paramFlag(fs *flag.FlagSet) map[string]any {
	params := map[string]any{}
	fs.Func("param", "a param as NAME=VALUE (repeatable)", func(v string) error {
		name, value, ok := strings.Cut(v, "=")
		if !ok || name == "" {
			return fmt.Errorf("want NAME=VALUE, not %q", v)
		}
		params[name] = value
		return nil
	})
	return params
}
