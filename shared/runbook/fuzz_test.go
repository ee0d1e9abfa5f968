package runbook_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/runbook"
)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkRunbook returns what is wrong with a runbook that Parse accepted, or "".
func checkRunbook(rb *runbook.Runbook) string {
	if rb == nil {
		return "Parse returned a nil runbook and no error"
	}
	if len(rb.Steps) == 0 || len(rb.Steps) > runbook.MaxSteps {
		return fmt.Sprintf("accepted %d steps", len(rb.Steps))
	}
	byName := make(map[string]runbook.Step, len(rb.Steps))
	for i, s := range rb.Steps {
		switch {
		case s.Name == "":
			return fmt.Sprintf("step %d has no name", i)
		case len(s.Name) > runbook.MaxNameLength:
			return fmt.Sprintf("step %d name is %d bytes long", i, len(s.Name))
		case strings.TrimSpace(s.Command) == "" && len(s.Args) == 0:
			return fmt.Sprintf("step %q has no command", s.Name)
		case s.Pos.Line < 1 || s.Pos.Column < 1:
			return fmt.Sprintf("step %q has position %+v", s.Name, s.Pos)
		}
		if _, dup := byName[s.Name]; dup {
			return fmt.Sprintf("step name %q appears twice", s.Name)
		}
		byName[s.Name] = s
		for k := range s.Env {
			if !envName.MatchString(k) {
				return fmt.Sprintf("step %q has env name %q", s.Name, k)
			}
		}
	}
	for k := range rb.Global.Env {
		if !envName.MatchString(k) {
			return fmt.Sprintf("global env name %q", k)
		}
	}
	for _, s := range rb.Steps {
		for _, d := range s.DependsOn {
			if _, ok := byName[d]; !ok {
				return fmt.Sprintf("step %q depends on missing step %q", s.Name, d)
			}
		}
	}
	// Kahn's algorithm: every step must be removable if there is no cycle.
	indeg := make(map[string]int, len(rb.Steps))
	dependents := make(map[string][]string, len(rb.Steps))
	for _, s := range rb.Steps {
		indeg[s.Name] += len(s.DependsOn)
		for _, d := range s.DependsOn {
			dependents[d] = append(dependents[d], s.Name)
		}
	}
	var queue []string
	for _, s := range rb.Steps {
		if indeg[s.Name] == 0 {
			queue = append(queue, s.Name)
		}
	}
	removed := 0
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		removed++
		for _, m := range dependents[n] {
			if indeg[m]--; indeg[m] == 0 {
				queue = append(queue, m)
			}
		}
	}
	if removed != len(rb.Steps) {
		return fmt.Sprintf("accepted a dependency cycle among %d steps", len(rb.Steps)-removed)
	}
	return ""
}

func FuzzParse(f *testing.F) {
	for _, dir := range []string{"good", "bad"} {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*.yml"))
		if err != nil {
			f.Fatal(err)
		}
		for _, path := range files {
			text, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(text)
		}
	}
	for _, s := range []string{
		"",
		"~",
		"steps:",
		"steps: [{name: a, command: x}]",
		"steps: [{name: a, command: x, depends_on: a}]",
		"steps: [{name: a, command: x, depends_on: [b]}, {name: b, command: y, depends_on: [a]}]",
		"steps: [&a {name: a, command: x}, *a]",
		"steps: &s [*s]",
		"global: &g {env: *g}\nsteps: [{name: a, command: x}]",
		"steps:\n- name: a\n  command: x\n  env: {? [k]: v}\n",
		"<<: {steps: [{name: a, command: x}]}",
		"steps: [{name: a, command: x}]\n---\nsteps: 1\n",
		"\t",
		"steps: [{name: \"a\\u0000\", command: x}]",
	} {
		f.Add([]byte(s))
	}
	const file = "fuzz.yml"
	f.Fuzz(func(t *testing.T, text []byte) {
		rb, err := runbook.Parse(file, text)
		if err == nil {
			if msg := checkRunbook(rb); msg != "" {
				t.Fatalf("%s\n--- runbook ---\n%q", msg, text)
			}
		} else {
			if rb != nil {
				t.Fatalf("Parse returned both a runbook and an error: %v", err)
			}
			errs, ok := err.(runbook.Errors)
			if !ok {
				t.Fatalf("error is %T, want runbook.Errors: %v", err, err)
			}
			if len(errs) == 0 {
				t.Fatal("error is an empty runbook.Errors")
			}
			for i, e := range errs {
				if !strings.HasPrefix(e.Error(), file+":") {
					t.Fatalf("error %d does not start with %q: %q", i, file, e.Error())
				}
				if e.Msg == "" {
					t.Fatalf("error %d has no message", i)
				}
				if i > 0 && (e.Pos.Line < errs[i-1].Pos.Line ||
					e.Pos.Line == errs[i-1].Pos.Line && e.Pos.Column < errs[i-1].Pos.Column) {
					t.Fatalf("errors not sorted: %v", errs)
				}
			}
		}
		// Parsing is deterministic: the same text gives the same answer.
		rb2, err2 := runbook.Parse(file, text)
		if !reflect.DeepEqual(rb, rb2) || fmt.Sprint(err) != fmt.Sprint(err2) {
			t.Fatalf("Parse is not deterministic:\n%v\n%v", err, err2)
		}
	})
}
