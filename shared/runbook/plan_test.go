package runbook_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/runbook"
)

// exampleParams gives every required param a value of its type.
func exampleParams(rb *runbook.Runbook) map[string]any {
	given := map[string]any{}
	for _, p := range rb.Params {
		if !p.Required {
			continue
		}
		switch p.Type {
		case runbook.ParamNumber:
			given[p.Name] = float64(1)
		case runbook.ParamBoolean:
			given[p.Name] = true
		case runbook.ParamEnum:
			given[p.Name] = p.Values[0]
		default:
			given[p.Name] = "example"
		}
	}
	return given
}

// Every good runbook has a golden plan: testdata/good/NAME.plan.
func TestPlanGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.yml")
	if err != nil || len(files) < 10 {
		t.Fatalf("want at least 10 good runbooks, found %d (%v)", len(files), err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yml")
		t.Run(name, func(t *testing.T) {
			text, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			rb, err := runbook.Parse(filepath.Base(file), text)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := rb.Plan(exampleParams(rb))
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			plan.Print(&got)
			golden := strings.TrimSuffix(file, ".yml") + ".plan"
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./shared/runbook -run TestPlanGolden -update)", err)
			}
			if got.String() != string(want) {
				t.Errorf("plan differs from %s:\n--- got\n%s--- want\n%s", golden, got.String(), want)
			}
		})
	}
}

func TestPlanLevelsAndDeferredValues(t *testing.T) {
	t.Parallel()
	rb, err := runbook.Parse("x.yml", []byte(`
params:
  tag: {default: v1}
steps:
  - name: d
    command: echo ${{ steps.b.outputs.x }} ${{ params.tag }}
    depends_on: [b, c]
  - name: a
    command: echo a
  - name: b
    command: echo b
    depends_on: [a]
  - name: c
    command: echo ${{ params.tag }}-${{ run.id }}
    depends_on: [a]
`))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := rb.Plan(nil)
	if err != nil {
		t.Fatal(err)
	}
	var names [][]string
	for _, level := range plan.Levels {
		var l []string
		for _, s := range level {
			l = append(l, s.Name)
		}
		names = append(names, l)
	}
	if got := strings.TrimSpace(strings.Join([]string{strings.Join(names[0], ","), strings.Join(names[1], ","), strings.Join(names[2], ",")}, " | ")); len(names) != 3 || got != "a | b,c | d" {
		t.Fatalf("levels %v, want a | b,c | d", names)
	}
	if c := plan.Levels[1][1]; c.Command != "echo v1-<run id>" {
		t.Errorf("c's command %q: params and run are known before the run", c.Command)
	}
	if d := plan.Levels[2][0]; d.Command != "echo ${{ steps.b.outputs.x }} ${{ params.tag }}" {
		t.Errorf("d's command %q: a value reading another step stays deferred", d.Command)
	}
	if _, err := rb.Plan(map[string]any{"nope": 1.0}); err == nil {
		t.Error("an unknown param was accepted")
	}
}
