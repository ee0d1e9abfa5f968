package series

import (
	"os"
	"strings"
	"testing"
)

// Every series is documented in docs/metrics.md, and names are unique.
func TestSeriesDocumentedAndUnique(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range append(Server(), Agent()...) {
		if s.Help == "" || s.Kind == "" || s.Scope == "" {
			t.Errorf("%s: help, kind and scope are required: %+v", s.Name, s)
		}
		if !strings.Contains(string(doc), "`"+s.Name+"`") {
			t.Errorf("docs/metrics.md does not describe %s", s.Name)
		}
		if strings.HasPrefix(s.Name, "baton_") {
			if seen[s.Name] {
				t.Errorf("%s is listed twice", s.Name)
			}
			seen[s.Name] = true
		}
		if s.Kind == Counter && !strings.HasSuffix(s.Name, "_total") {
			t.Errorf("counter %s must end in _total", s.Name)
		}
	}
	if n := Names([]Series{{Name: "x", Kind: Histogram}}); strings.Join(n, " ") != "x_bucket x_sum x_count" {
		t.Errorf("Names of a histogram = %v", n)
	}
}
