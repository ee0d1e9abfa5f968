package shared

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/baton-ci/baton"

// deps lists the packages that the patterns need to build (tests excluded,
// unless the first pattern is the flag -test).
func deps(t *testing.T, patterns ...string) []string {
	t.Helper()
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, patterns...)
	cmd := exec.Command("go", args...)
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", patterns, err)
	}
	return strings.Fields(string(out))
}

func TestImportBoundaries(t *testing.T) {
	t.Parallel()
	rules := []struct {
		what      string
		patterns  []string
		forbidden []string
	}{
		{"shared", []string{"./shared/..."}, []string{module + "/server", module + "/agent", module + "/ui",
			"gorm.io/", "github.com/go-chi/", "github.com/moby/", "github.com/ncruces/", "github.com/jackc/"}},
		{"server", []string{"./server/..."}, []string{module + "/agent"}},
		{"agent", []string{"./agent/..."}, []string{module + "/server", module + "/ui", "gorm.io/", "github.com/ncruces/",
			"modernc.org/sqlite", "github.com/mattn/go-sqlite3", "github.com/go-chi/", "github.com/jackc/"}},
		{"the baton-agent binary", []string{"./agent/cmd/baton-agent"}, []string{"gorm.io/", "sqlite", "github.com/jackc/", module + "/ui", module + "/server"}},
	}
	for _, r := range rules {
		list := deps(t, r.patterns...)
		if len(list) < 5 {
			t.Fatalf("%s: go list found only %v", r.what, list)
		}
		for _, p := range list {
			for _, f := range r.forbidden {
				if p == f || strings.HasPrefix(p, f) || (f == "sqlite" && strings.Contains(p, "sqlite")) {
					t.Errorf("%s must not depend on %s, but needs %s", r.what, f, p)
				}
			}
		}
	}
}

// TestKubernetesOnlyInDeployTests keeps the Kubernetes API types (which
// deploy/ uses to check its manifests) out of every binary, and out of the
// tests of agent/, server/, shared/ and ui/.
func TestKubernetesOnlyInDeployTests(t *testing.T) {
	t.Parallel()
	check := func(what string, list []string) {
		if len(list) < 5 {
			t.Fatalf("%s: go list found only %v", what, list)
		}
		for _, p := range list {
			if strings.HasPrefix(p, "k8s.io/") || strings.HasPrefix(p, "sigs.k8s.io/") {
				t.Errorf("%s must not depend on %s: only deploy/'s tests may", what, p)
			}
		}
	}
	check("the module's packages", deps(t, "./..."))
	check("the tests of agent/, server/, shared/ and ui/", deps(t, "-test", "./agent/...", "./server/...", "./shared/...", "./ui/..."))
}
