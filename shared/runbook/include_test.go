package runbook_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/runbook"
)

// repo is an in-memory repository for includes.
type repo map[string]string

func (r repo) load(path string) ([]byte, error) {
	text, ok := r[path]
	if !ok {
		return nil, fmt.Errorf("no file %s", path)
	}
	return []byte(text), nil
}

func TestIncludeGraftsSteps(t *testing.T) {
	t.Parallel()
	files := repo{
		"ci/deploy.yml": `
params:
  env: {default: staging}
global:
  image: alpine
  env:
    REGION: eu
steps:
  - name: migrate
    command: echo "version=1" >> "$BATON_OUTPUT"
    outputs: [version]
  - name: rollout
    depends_on: [migrate]
    env:
      VERSION: ${{ steps.migrate.outputs.version }}
    command: rollout ${{ params.env }} ${{ steps.migrate.outputs.version }}
    if: steps.migrate.state == 'succeeded'
`,
		"ci/lint.yml": "steps:\n  - name: vet\n    command: go vet ./...\n",
	}
	root := `
global:
  env:
    REGION: us
    TEAM: core
include:
  - path: ci/lint.yml
    as: lint
  - path: ./ci/deploy.yml
    as: deploy
    after: [build]
steps:
  - name: build
    command: make
`
	rb, err := runbook.ParseFiles("runbook.yml", []byte(root), files.load)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]runbook.Step{}
	var names []string
	for _, s := range rb.Steps {
		got[s.Name] = s
		names = append(names, s.Name)
	}
	if want := []string{"build", "lint.vet", "deploy.migrate", "deploy.rollout"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("steps %v, want %v", names, want)
	}
	if d := got["lint.vet"].DependsOn; len(d) != 0 {
		t.Errorf("lint.vet depends on %v; an include without after starts in parallel", d)
	}
	if d := got["deploy.migrate"].DependsOn; !reflect.DeepEqual(d, []string{"build"}) {
		t.Errorf("deploy.migrate depends on %v, want [build]", d)
	}
	roll := got["deploy.rollout"]
	if !reflect.DeepEqual(roll.DependsOn, []string{"deploy.migrate"}) || roll.Image != "alpine" || roll.Pos.File != "ci/deploy.yml" {
		t.Errorf("deploy.rollout: %+v", roll)
	}
	if want := "rollout ${{ params.env }} ${{ steps['deploy.migrate'].outputs.version }}"; roll.Command != want {
		t.Errorf("command %q, want %q", roll.Command, want)
	}
	if roll.If != "steps['deploy.migrate'].state == 'succeeded'" {
		t.Errorf("if %q", roll.If)
	}
	env := rb.EnvFor(roll)
	if env["REGION"] != "eu" || env["TEAM"] != "core" || env["VERSION"] != "${{ steps['deploy.migrate'].outputs.version }}" {
		t.Errorf("env %v: the included global wins over the root's, the step's over both", env)
	}
	if len(rb.Params) != 1 || rb.Params[0].Name != "env" {
		t.Errorf("params %+v: the included runbook's params join the root's", rb.Params)
	}
}

func TestIncludeErrors(t *testing.T) {
	t.Parallel()
	files := repo{
		"a.yml":   "include: [{path: b.yml, as: b}]\nsteps:\n  - name: x\n    command: x\n",
		"b.yml":   "include: [{path: a.yml, as: a}]\nsteps:\n  - name: y\n    command: y\n",
		"bad.yml": "steps:\n  - name: y\n    comand: y\n",
		"p.yml":   "params:\n  n: {type: number, default: 1}\nsteps:\n  - name: y\n    command: y\n",
	}
	cases := []struct {
		name, root string
		load       runbook.Loader
		want       []string
	}{
		{"no repository", "include: [{path: a.yml, as: a}]\n", nil,
			[]string{"runbook.yml:1:11: include a.yml: includes are read from the runbook's repository"}},
		{"cycle", "include: [{path: a.yml, as: a}]\n", files.load,
			[]string{"b.yml:1:11: include cycle: runbook.yml -> a.yml -> b.yml -> a.yml"}},
		{"leaves the repository", "include: [{path: ../x.yml, as: a}, {path: /etc/x.yml, as: b}]\n", files.load,
			[]string{`include path "../x.yml" leaves the repository`, `include path "/etc/x.yml" is absolute`}},
		{"missing file", "include: [{path: nope.yml, as: a}]\n", files.load, []string{"include nope.yml: no file nope.yml"}},
		{"error inside", "include: [{path: bad.yml, as: bad}]\n", files.load,
			[]string{`bad.yml:3:5: unknown step key "comand" (did you mean command?)`}},
		{"unknown after", "include: [{path: bad.yml, as: bad}, {path: p.yml, as: p, after: [zz]}]\n", files.load,
			[]string{`after names unknown step "zz"`}},
		{"param type clash", "params:\n  n: {type: string}\ninclude: [{path: p.yml, as: p}]\n", files.load,
			[]string{`param "n" is a string here and a number in p.yml`}},
		{"no path or as", "include: [{as: a}, {path: a.yml}]\nsteps: [{name: s, command: s}]\n", files.load,
			[]string{"include has no path", "include of a.yml has no as"}},
	}
	for _, c := range cases {
		_, err := runbook.ParseFiles("runbook.yml", []byte(c.root), c.load)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error lacks %q:\n%v", c.name, w, err)
			}
		}
	}
}
