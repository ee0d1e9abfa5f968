package runbook_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/runbook"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.golden and testdata/good/*.plan from the current output")

func mustParse(t *testing.T, text string) *runbook.Runbook {
	t.Helper()
	rb, err := runbook.Parse("runbook.yml", []byte(text))
	if err != nil {
		t.Fatalf("Parse: %v\n--- runbook ---\n%s", err, text)
	}
	return rb
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		text string
		want *runbook.Runbook
	}{
		{
			name: "minimal",
			text: "steps:\n  - name: test\n    command: go test ./...\n",
			want: &runbook.Runbook{Steps: []runbook.Step{
				{Name: "test", Command: "go test ./...", Pos: runbook.Pos{Line: 2, Column: 5}},
			}},
		},
		{
			name: "every key",
			text: `name: baton
global:
  image: golang:1.26
  env:
    CGO_ENABLED: "0"
    GOFLAGS: -mod=readonly
steps:
  - name: test
    command: go test ./...
    env: {GOFLAGS: -race, CGO_ENABLED: 1}
  - name: build
    command: make build
    image: golang:1.26-alpine
    depends_on: [test]
`,
			want: &runbook.Runbook{
				Name: "baton",
				Global: runbook.Global{
					Image: "golang:1.26",
					Env:   map[string]string{"CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"},
				},
				Steps: []runbook.Step{
					{
						Name: "test", Command: "go test ./...",
						Env: map[string]string{"GOFLAGS": "-race", "CGO_ENABLED": "1"},
						Pos: runbook.Pos{Line: 8, Column: 5},
					},
					{
						Name: "build", Command: "make build", Image: "golang:1.26-alpine",
						DependsOn: []string{"test"},
						Pos:       runbook.Pos{Line: 11, Column: 5},
					},
				},
			},
		},
		{
			name: "depends_on as a single string",
			text: "steps:\n- name: a\n  command: x\n- name: b\n  command: y\n  depends_on: a\n",
			want: &runbook.Runbook{Steps: []runbook.Step{
				{Name: "a", Command: "x", Pos: runbook.Pos{Line: 2, Column: 3}},
				{Name: "b", Command: "y", DependsOn: []string{"a"}, Pos: runbook.Pos{Line: 4, Column: 3}},
			}},
		},
		{
			name: "scalars of other types are kept as written",
			text: "name: 2024\nsteps:\n- name: 1.0\n  command: true\n  env: {N: 010, B: yes, E: ~, F: 1e3}\n",
			want: &runbook.Runbook{Name: "2024", Steps: []runbook.Step{
				{
					Name: "1.0", Command: "true",
					Env: map[string]string{"N": "010", "B": "yes", "E": "", "F": "1e3"},
					Pos: runbook.Pos{Line: 3, Column: 3},
				},
			}},
		},
		{
			name: "block scalar command",
			text: "steps:\n  - name: script\n    command: |\n      set -e\n      make\n",
			want: &runbook.Runbook{Steps: []runbook.Step{
				{Name: "script", Command: "set -e\nmake\n", Pos: runbook.Pos{Line: 2, Column: 5}},
			}},
		},
		{
			name: "aliased step and env",
			text: "global:\n  env: &e {A: '1'}\nsteps:\n  - &s {name: a, command: x, env: *e}\n  - {name: b, command: y, depends_on: [a], env: *e}\n",
			want: &runbook.Runbook{
				Global: runbook.Global{Env: map[string]string{"A": "1"}},
				Steps: []runbook.Step{
					{Name: "a", Command: "x", Env: map[string]string{"A": "1"}, Pos: runbook.Pos{Line: 4, Column: 5}},
					{Name: "b", Command: "y", DependsOn: []string{"a"}, Env: map[string]string{"A": "1"}, Pos: runbook.Pos{Line: 5, Column: 5}},
				},
			},
		},
		{
			name: "aliased single values",
			text: "steps:\n- {name: &n a, command: &c make}\n- {name: b, command: *c, depends_on: *n, env: {X: *c}}\n- {name: c, command: *c, depends_on: [*n]}\n",
			want: &runbook.Runbook{Steps: []runbook.Step{
				{Name: "a", Command: "make", Pos: runbook.Pos{Line: 2, Column: 3}},
				{Name: "b", Command: "make", DependsOn: []string{"a"}, Env: map[string]string{"X": "make"}, Pos: runbook.Pos{Line: 3, Column: 3}},
				{Name: "c", Command: "make", DependsOn: []string{"a"}, Pos: runbook.Pos{Line: 4, Column: 3}},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := mustParse(t, tt.text)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse =\n  %+v\nwant\n  %+v", got, tt.want)
			}
		})
	}
}

func TestImageForEnvFor(t *testing.T) {
	t.Parallel()
	rb := mustParse(t, `global:
  image: alpine:3
  env: {A: global, B: global}
steps:
  - name: plain
    command: "true"
  - name: own
    command: "true"
    image: busybox
    env: {B: step, C: step}
`)
	plain, own := rb.Steps[0], rb.Steps[1]
	if got := rb.ImageFor(plain); got != "alpine:3" {
		t.Errorf("ImageFor(plain) = %q, want the global image", got)
	}
	if got := rb.ImageFor(own); got != "busybox" {
		t.Errorf("ImageFor(own) = %q, want the step's image", got)
	}
	if got, want := rb.EnvFor(plain), map[string]string{"A": "global", "B": "global"}; !reflect.DeepEqual(got, want) {
		t.Errorf("EnvFor(plain) = %v, want %v", got, want)
	}
	if got, want := rb.EnvFor(own), map[string]string{"A": "global", "B": "step", "C": "step"}; !reflect.DeepEqual(got, want) {
		t.Errorf("EnvFor(own) = %v, want %v", got, want)
	}
	// The merged map is a copy: changing it must not leak into the runbook.
	rb.EnvFor(own)["A"] = "changed"
	if rb.Global.Env["A"] != "global" {
		t.Errorf("EnvFor returned the global map itself")
	}

	bare := mustParse(t, "steps: [{name: a, command: x}]")
	if got := bare.ImageFor(bare.Steps[0]); got != "" {
		t.Errorf("ImageFor without any image = %q, want empty (agent default)", got)
	}
	if got := bare.EnvFor(bare.Steps[0]); got == nil || len(got) != 0 {
		t.Errorf("EnvFor without any env = %#v, want an empty non-nil map", got)
	}
}

func TestNodes(t *testing.T) {
	t.Parallel()
	rb := mustParse(t, "steps:\n- {name: a, command: x}\n- {name: b, command: y, depends_on: a}\n")
	want := []engine.Node{{Name: "a"}, {Name: "b", DependsOn: []string{"a"}}}
	if got := rb.Nodes(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Nodes = %+v, want %+v", got, want)
	}
}

func testdataFiles(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no testdata/%s/*.yml files", dir)
	}
	return files
}

func TestParseGoodFiles(t *testing.T) {
	t.Parallel()
	files := testdataFiles(t, "good")
	if len(files) < 5 {
		t.Fatalf("only %d good runbooks; want at least 5", len(files))
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			rb, err := runbook.Parse(filepath.Base(path), text)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if msg := checkRunbook(rb); msg != "" {
				t.Fatal(msg)
			}
		})
	}
}

// TestParseFullFile pins down what testdata/good/full.yml means, key by key.
func TestParseFullFile(t *testing.T) {
	t.Parallel()
	text, err := os.ReadFile(filepath.Join("testdata", "good", "full.yml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := runbook.Parse("full.yml", text)
	if err != nil {
		t.Fatal(err)
	}
	want := &runbook.Runbook{
		Name: "baton",
		Global: runbook.Global{
			Image: "golang:1.26",
			Env:   map[string]string{"CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"},
		},
		Steps: []runbook.Step{
			{Name: "lint", Command: "go vet ./...", Pos: runbook.Pos{Line: 9, Column: 5}},
			{
				Name: "test", Command: "go test ./...",
				Env: map[string]string{"GOFLAGS": "-race", "CGO_ENABLED": "1"},
				Pos: runbook.Pos{Line: 11, Column: 5},
			},
			{
				Name: "build", Command: "make build", Image: "golang:1.26-alpine",
				DependsOn: []string{"lint", "test"},
				Env:       map[string]string{"EMPTY": ""},
				Pos:       runbook.Pos{Line: 16, Column: 5},
			},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse(full.yml) =\n  %+v\nwant\n  %+v", got, want)
	}
}

// TestParseBadGolden checks the exact text of every error message against
// testdata/bad/*.golden. Run with -update to rewrite them, then read the diff:
// each message must point at the right line:column and say how to fix it.
func TestParseBadGolden(t *testing.T) {
	t.Parallel()
	files := testdataFiles(t, "bad")
	if len(files) < 12 {
		t.Fatalf("only %d bad runbooks; want at least 12", len(files))
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".yml"), func(t *testing.T) {
			t.Parallel()
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			rb, err := runbook.Parse(name, text)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", rb)
			}
			if rb != nil {
				t.Errorf("Parse returned a runbook with its error")
			}
			var errs runbook.Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error is %T %v, want a non-empty runbook.Errors", err, err)
			}
			for i, e := range errs {
				if e.File != name {
					t.Errorf("error %d names file %q, want %q", i, e.File, name)
				}
				if i > 0 && (e.Pos.Line < errs[i-1].Pos.Line ||
					e.Pos.Line == errs[i-1].Pos.Line && e.Pos.Column < errs[i-1].Pos.Column) {
					t.Errorf("errors not sorted by position: %v before %v", errs[i-1], e)
				}
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(path, ".yml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./shared/runbook -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("error output differs from %s\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

// TestGoldenFilesHaveRunbooks catches a golden file left behind by a renamed
// or deleted case.
func TestGoldenFilesHaveRunbooks(t *testing.T) {
	t.Parallel()
	goldens, err := filepath.Glob(filepath.Join("testdata", "bad", "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range goldens {
		if _, err := os.Stat(strings.TrimSuffix(g, ".golden") + ".yml"); err != nil {
			t.Errorf("%s has no runbook: %v", g, err)
		}
	}
}

// TestParseErrorContents states the promises behind the golden files, so a
// careless -update cannot quietly weaken them.
func TestParseErrorContents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want []string // substrings of err.Error()
	}{
		{"cycle2.yml", []string{"cycle2.yml:2:5: ", "a -> b -> a"}},
		{"cycle3.yml", []string{"cycle3.yml:4:5: ", "x -> z -> y -> x"}},
		{"self_dependency.yml", []string{"self_dependency.yml:2:5: ", `"build" depends on itself`}},
		{"unknown_dependency.yml", []string{"unknown_dependency.yml:4:5: ", `unknown step "biuld"`}},
		{"duplicate_name.yml", []string{"duplicate_name.yml:6:5: ", "line 2"}},
		{"unknown_key.yml", []string{"unknown_key.yml:3:5: ", "did you mean command?"}},
		{"unknown_top_key.yml", []string{"unknown_top_key.yml:2:1: ", "did you mean global?", "unknown_top_key.yml:7:5: "}},
		{"bad_env_name.yml", []string{"bad_env_name.yml:3:5: ", `"MY-VAR"`, "bad_env_name.yml:8:7: ", `"1ST"`}},
		{"bad_step_name.yml", []string{"bad_step_name.yml:2:5: ", `"build app"`, "bad_step_name.yml:4:5: ", `"-test"`}},
		{"yaml_syntax.yml", []string{"yaml_syntax.yml:3: invalid YAML"}},
		{"many_errors.yml", []string{"6 problems:\n", "many_errors.yml:3:3: ", "did you mean image?", "many_errors.yml:15:14: "}},
		{"command_not_string.yml", []string{"command_not_string.yml:3:14: command must be a string"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			text, err := os.ReadFile(filepath.Join("testdata", "bad", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			_, err = runbook.Parse(tt.file, text)
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestParseYAMLSyntaxErrors pins down the line yaml.v3 errors are reported
// at. yaml.v3 numbers parser errors ("did not find expected ...") from 0 and
// scanner errors from 1, and never gives a column.
func TestParseYAMLSyntaxErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text, want string
	}{
		{"list item in a mapping", "a: 1\n- b\n", "y.yml:2: invalid YAML: did not find expected key"},
		{"list item after two keys", "a: 1\nb: 2\n- c\n", "y.yml:3: invalid YAML: did not find expected key"},
		{"mapping after blank lines", "\n\n\na: 1\n- b\n", "y.yml:4: invalid YAML: did not find expected key"},
		{"dedented key", "x:\n  y: 1\n z: 2\n", "y.yml:3: invalid YAML: did not find expected key"},
		{"unclosed flow list", "steps: [a, b\nname: x\n", "y.yml:2: invalid YAML: did not find expected ',' or ']'"},
		{"tab indentation", "steps:\n\t- name: a\n", "y.yml:2: invalid YAML: found character that cannot start any token"},
		{"value on a nested key", "name: x\n  bad: y\n", "y.yml:2: invalid YAML: mapping values are not allowed in this context"},
		{"no line known", "a: b: c\n", "y.yml: invalid YAML: mapping values are not allowed in this context"},
		{"unknown anchor", "steps: *nope\n", "y.yml: invalid YAML: unknown anchor 'nope' referenced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := runbook.Parse("y.yml", []byte(tt.text))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Parse(%q) error = %v, want %q", tt.text, err, tt.want)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	t.Parallel()
	t.Run("too many steps", func(t *testing.T) {
		t.Parallel()
		_, err := runbook.Parse("big.yml", []byte(generateRunbook(runbook.MaxSteps+1)))
		want := fmt.Sprintf("big.yml:3:3: runbook has %d steps; the limit is %d", runbook.MaxSteps+1, runbook.MaxSteps)
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v, want %q", err, want)
		}
	})
	t.Run("as many steps as allowed", func(t *testing.T) {
		t.Parallel()
		rb, err := runbook.Parse("big.yml", []byte(generateRunbook(runbook.MaxSteps)))
		if err != nil {
			t.Fatal(err)
		}
		if len(rb.Steps) != runbook.MaxSteps {
			t.Fatalf("%d steps, want %d", len(rb.Steps), runbook.MaxSteps)
		}
	})
	t.Run("too large", func(t *testing.T) {
		t.Parallel()
		text := "steps: [{name: a, command: x}]\n# " + strings.Repeat("x", runbook.MaxSize)
		_, err := runbook.Parse("huge.yml", []byte(text))
		want := fmt.Sprintf("huge.yml: runbook is %d bytes; the limit is %d", len(text), runbook.MaxSize)
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v, want %q", err, want)
		}
	})
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{runbook.Error{File: "f.yml", Pos: runbook.Pos{Line: 3, Column: 7}, Msg: "bad"}, "f.yml:3:7: bad"},
		{runbook.Error{File: "f.yml", Msg: "bad"}, "f.yml: bad"},
		{runbook.Error{File: "f.yml", Pos: runbook.Pos{Line: 3}, Msg: "bad"}, "f.yml:3: bad"},
		{runbook.Error{Pos: runbook.Pos{Line: 1, Column: 1}, Msg: "bad"}, "runbook.yml:1:1: bad"},
		{runbook.Errors{{File: "f.yml", Pos: runbook.Pos{Line: 1, Column: 1}, Msg: "one"}}, "f.yml:1:1: one"},
		{
			runbook.Errors{{File: "f.yml", Pos: runbook.Pos{Line: 1, Column: 1}, Msg: "one"}, {File: "f.yml", Msg: "two"}},
			"2 problems:\nf.yml:1:1: one\nf.yml: two",
		},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// generateRunbook returns a valid runbook of n steps; each step after the
// first depends on up to three earlier ones.
func generateRunbook(n int) string {
	var b strings.Builder
	b.WriteString("name: generated\nsteps:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: step-%04d\n    command: echo %d && make target-%d\n", i, i, i)
		if i > 0 {
			var deps []string
			for _, d := range []int{i - 1, i/2 - 1, i - 10} {
				name := fmt.Sprintf("step-%04d", d)
				if d >= 0 && !slices.Contains(deps, name) {
					deps = append(deps, name)
				}
			}
			fmt.Fprintf(&b, "    depends_on: [%s]\n", strings.Join(deps, ", "))
		}
		if i%5 == 0 {
			fmt.Fprintf(&b, "    image: alpine:3.%d\n    env:\n      STEP: \"%d\"\n      MODE: test\n", i%20, i)
		}
	}
	return b.String()
}

func BenchmarkParse(b *testing.B) {
	text := []byte(generateRunbook(200))
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := runbook.Parse("bench.yml", text); err != nil {
			b.Fatal(err)
		}
	}
}

// A small file of aliases that would expand to 400,000 values is refused
// once the budget is spent, instead of being expanded.
func TestAliasBombIsRefused(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("x: &l0 [")
	for i := 0; i < 400; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "n%d", i)
	}
	b.WriteString("]\nsteps:\n")
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&b, "  - {name: s%d, command: x, depends_on: *l0}\n", i)
	}
	_, err := runbook.Parse("bomb.yml", []byte(strings.Replace(b.String(), "x: &l0", "global: {env: {A: b}}\nx0: &l0", 1)))
	if err == nil || !strings.Contains(err.Error(), "once YAML aliases are followed") {
		t.Fatalf("alias bomb: %v", err)
	}
}
