package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/baton-ci/baton/shared/runbook"
)

// validate checks runbook files and prints every problem; it fails if any
// file has one. Runbook authors run it before they push.
func validate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("baton-agent validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
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
		if _, err := readRunbook(file); err != nil {
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
	params := map[string]any{}
	fs.Func("param", "a param as NAME=VALUE (repeatable)", func(v string) error {
		name, value, ok := strings.Cut(v, "=")
		if !ok || name == "" {
			return fmt.Errorf("want NAME=VALUE, not %q", v)
		}
		params[name] = value
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: baton-agent plan [--param NAME=VALUE]... RUNBOOK.yml")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return usageError{errors.New("name one runbook file")}
	}
	rb, err := readRunbook(fs.Arg(0))
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

func readRunbook(file string) (*runbook.Runbook, error) {
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return runbook.Parse(file, text)
}
