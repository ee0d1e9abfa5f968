package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestValidate(t *testing.T) {
	t.Parallel()
	good := writeFile(t, "good.yml", "steps:\n  - name: a\n    command: echo a\n")
	bad := writeFile(t, "bad.yml", "steps:\n  - name: a\n    command: echo a\n    depends_on: [zz]\n")
	var out, errOut bytes.Buffer
	if err := validate([]string{good}, &out, &errOut); err != nil || out.String() != good+": ok\n" {
		t.Fatalf("good runbook: err %v, out %q, stderr %q", err, out.String(), errOut.String())
	}
	out.Reset()
	err := validate([]string{good, bad}, &out, &errOut)
	if err == nil || !strings.Contains(errOut.String(), bad+`:2:5: step "a" depends on unknown step "zz"`) {
		t.Fatalf("bad runbook: err %v, stderr %q", err, errOut.String())
	}
	if err := validate(nil, &out, &errOut); err == nil {
		t.Fatal("validate without files succeeded")
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "rb.yml", "params:\n  who: {required: true}\nsteps:\n  - name: a\n    command: echo ${{ params.who }}\n  - name: b\n    command: echo b\n    depends_on: [a]\n")
	var out, errOut bytes.Buffer
	if err := plan([]string{"--param", "who=world", file}, &out, &errOut); err != nil {
		t.Fatalf("plan: %v (%s)", err, errOut.String())
	}
	for _, want := range []string{"param who = world", "level 0:\n  a\n", "command: echo world", "level 1:\n  b (after a)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan output lacks %q:\n%s", want, out.String())
		}
	}
	if err := plan([]string{file}, &out, &errOut); err == nil || !strings.Contains(err.Error(), `param "who" is required`) {
		t.Errorf("plan without a required param: %v", err)
	}
}

func TestStubModeTest(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "rb.yml", "steps:\n  - name: build\n    command: make\n    retry: 1\n  - name: ship\n    command: ship\n    depends_on: [build]\n  - name: alert\n    command: page\n    depends_on: [ship]\n    if: failure()\n")
	stubs := writeFile(t, "stubs.yml", "build:\n  - exit_code: 1\n  - exit_code: 0\nship:\n  exit_code: 3\n")
	var out, errOut bytes.Buffer
	if err := test(t.Context(), []string{"--stubs", stubs, "--expect", "failed", file}, &out, &errOut); err != nil {
		t.Fatalf("test: %v\n%s%s", err, out.String(), errOut.String())
	}
	for _, want := range []string{"build                    succeeded  (2 attempts)", "ship                     failed     exit_code", "alert                    succeeded", "run failed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := test(t.Context(), []string{"--stubs", stubs, file}, &out, &errOut); err == nil {
		t.Error("a failed run met the default expectation (succeeded)")
	}
	bad := writeFile(t, "bad.yml", "nosuch:\n  exit_code: 1\n")
	if err := test(t.Context(), []string{"--stubs", bad, file}, &out, &errOut); err == nil || !strings.Contains(err.Error(), `no step "nosuch"`) {
		t.Errorf("stub for an unknown step: %v", err)
	}
}

func TestIncludesReadFromRoot(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "ci"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "ci", "lint.yml"), []byte("steps:\n  - name: vet\n    command: go vet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "runbook.yml")
	if err := os.WriteFile(file, []byte("include: [{path: ci/lint.yml, as: lint, after: [build]}]\nsteps:\n  - name: build\n    command: make\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := plan([]string{"--root", root, file}, &out, &errOut); err != nil || !strings.Contains(out.String(), "lint.vet (after build)") {
		t.Fatalf("plan with --root: %v\n%s%s", err, out.String(), errOut.String())
	}
	if err := validate([]string{"--root", t.TempDir(), file}, &out, &errOut); err == nil || !strings.Contains(errOut.String(), "include ci/lint.yml") {
		t.Fatalf("validate with the wrong root: %v, %s", err, errOut.String())
	}
}

func TestAgentLabels(t *testing.T) {
	t.Parallel()
	env := map[string]string{"BATON_SERVER": "http://127.0.0.1:1", "BATON_AGENT_LABELS": "gpu, zone=eu-1,gpu"}
	cfg, err := parseConfig([]string{"--name", "n", "--state-dir", t.TempDir()}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Labels) != 4 || cfg.Labels[2] != "gpu" || cfg.Labels[3] != "zone=eu-1" || !strings.HasPrefix(cfg.Labels[0], "os=") {
		t.Errorf("labels %v", cfg.Labels)
	}
	if _, err := parseConfig([]string{"--name", "n", "--labels", "bad label"}, func(k string) string { return env[k] }); err == nil {
		t.Error("an invalid label was accepted")
	}
}
