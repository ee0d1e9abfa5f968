package runbook_test

import (
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/runbook"
)

func TestOnTriggers(t *testing.T) {
	rb, err := runbook.Parse("runbook.yml", []byte("on:\n  push:\n    branches: [main, \"release/*\"]\n  pull_request:\n  api: {}\nsteps:\n  - name: a\n    command: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kind, branch string
		ok           bool
	}{
		{"push", "main", true}, {"push", "release/1.2", true}, {"push", "feature/x", false},
		{"pull_request", "anything", true}, {"api", "", true}, {"schedule", "", false},
	} {
		if ok, why := rb.On.Takes(c.kind, c.branch); ok != c.ok || (!ok && why == "") {
			t.Errorf("Takes(%s, %s) = %v %q, want %v", c.kind, c.branch, ok, why, c.ok)
		}
	}
	none, err := runbook.Parse("runbook.yml", []byte("steps:\n  - name: a\n    command: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := none.On.Takes("schedule", ""); !ok {
		t.Error("a runbook without on: refused a schedule")
	}
	for src, want := range map[string]string{
		"on:\n  push:\n    branches: [\"[\"]\n": "not a branch pattern",
		"on:\n  api: yes please\n":              "takes no options",
		"on: [push]\n":                          "on must be a mapping",
		"on:\n  push:\n    tags: [v1]\n":        `unknown on.push key "tags"`,
	} {
		_, err := runbook.Parse("runbook.yml", []byte(src+"steps:\n  - name: a\n    command: x\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
}

func TestResources(t *testing.T) {
	rb, err := runbook.Parse("runbook.yml", []byte("global:\n  resources: {memory: 1Gi, cpus: 2}\nsteps:\n  - name: a\n    command: x\n    resources: {memory: 256M}\n  - name: b\n    command: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := rb.ResourcesFor(rb.Steps[0]); r.Memory != 256e6 || r.NanoCPUs != 2e9 {
		t.Errorf("a: %+v", r)
	}
	if r := rb.ResourcesFor(rb.Steps[1]); r.Memory != 1<<30 || r.NanoCPUs != 2e9 {
		t.Errorf("b: %+v", r)
	}
	for src, want := range map[string]string{
		"resources: {memory: 1KB}": "not a size",
		"resources: {memory: 1Ki}": "use 6 MiB",
		"resources: {cpus: 0}":     "0.01 to 256",
		"resources: {disk: 1Gi}":   `unknown resources key "disk"`,
	} {
		_, err := runbook.Parse("runbook.yml", []byte("steps:\n  - name: a\n    command: x\n    "+src+"\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", src, err, want)
		}
	}
}
