package runbook_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/baton-ci/baton/shared/runbook"
)

// docsFile is the runbook reference whose examples TestDocsExamples checks.
const docsFile = "../../docs/runbooks.md"

// minDocBlocks keeps the test from passing on a file that lost its examples.
const minDocBlocks = 20

// docBlock is one ```yaml block of the reference, with what its marker
// comments say about it.
type docBlock struct {
	line     int    // of the opening fence, 1-based
	text     string // the block as written, markers included
	fragment string // "", "top" or "step"
	invalid  bool
	errors   []string // texts the error must contain
	golden   string   // name of a testdata/bad case the block copies
	stubs    bool     // a stubs file of baton-agent test, not a runbook
	next     string   // info string of the next fenced block ("text", ...)
	nextText string   // and its content
}

var fenceRe = regexp.MustCompile("^(\\s*)```+\\s*(\\S*)")

// docBlocks returns every fenced ```yaml block of a Markdown text, and for
// each the fenced block that follows it, if any.
func docBlocks(t *testing.T, md string) []docBlock {
	t.Helper()
	type fence struct {
		line       int
		info, text string
	}
	var fences []fence
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		m := fenceRe.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		indent, start := m[1], i
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, strings.TrimPrefix(lines[i], indent))
		}
		if i == len(lines) {
			t.Fatalf("%s:%d: fenced block is never closed", docsFile, start+1)
		}
		fences = append(fences, fence{line: start + 1, info: m[2], text: strings.Join(body, "\n") + "\n"})
	}
	var blocks []docBlock
	for i, f := range fences {
		if f.info != "yaml" {
			continue
		}
		b := docBlock{line: f.line, text: f.text}
		if i+1 < len(fences) {
			b.next, b.nextText = fences[i+1].info, fences[i+1].text
		}
		for _, l := range strings.Split(f.text, "\n") {
			l = strings.TrimSpace(l)
			switch {
			case l == "# fragment: top", l == "# fragment: step":
				if b.fragment != "" {
					t.Errorf("%s:%d: block has two fragment markers", docsFile, b.line)
				}
				b.fragment = strings.TrimPrefix(l, "# fragment: ")
			case strings.HasPrefix(l, "# fragment:"):
				t.Errorf("%s:%d: unknown marker %q: use # fragment: top or # fragment: step", docsFile, b.line, l)
			case l == "# invalid":
				b.invalid = true
			case strings.HasPrefix(l, "# error: "):
				b.errors = append(b.errors, strings.TrimPrefix(l, "# error: "))
			case strings.HasPrefix(l, "# golden: "):
				b.golden = strings.TrimPrefix(l, "# golden: ")
			case l == "# stubs file":
				b.stubs = true
			}
		}
		blocks = append(blocks, b)
	}
	return blocks
}

// withoutMarkers drops the marker comment lines of a block.
func withoutMarkers(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		switch t := strings.TrimSpace(l); {
		case strings.HasPrefix(t, "# fragment:"), t == "# invalid", strings.HasPrefix(t, "# error:"), strings.HasPrefix(t, "# golden:"):
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// hasTopLevelSteps reports whether text is a YAML mapping with a steps key.
func hasTopLevelSteps(text string) bool {
	var doc yaml.Node
	if yaml.Unmarshal([]byte(text), &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return false
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "steps" {
			return true
		}
	}
	return false
}

// wrap turns a fragment into a runbook.
func wrap(b docBlock) string {
	switch b.fragment {
	case "top":
		return b.text + "steps:\n  - name: docs-dummy\n    command: \"true\"\n"
	case "step":
		var sb strings.Builder
		sb.WriteString("steps:\n  - name: docs-dummy\n    command: \"true\"\n  -\n")
		for _, l := range strings.Split(strings.TrimSuffix(b.text, "\n"), "\n") {
			sb.WriteString("    " + l + "\n")
		}
		return sb.String()
	}
	return b.text
}

// TestDocsExamples checks every ```yaml example of docs/runbooks.md against
// the parser: complete runbooks and marked fragments must parse, examples
// marked # invalid must fail (with the # error: texts), and examples marked
// # golden: NAME must be the testdata/bad case NAME with its golden output.
// It also checks that the examples use every key the parser accepts.
func TestDocsExamples(t *testing.T) {
	t.Parallel()
	md, err := os.ReadFile(docsFile)
	if err != nil {
		t.Fatal(err)
	}
	blocks := docBlocks(t, string(md))
	if len(blocks) < minDocBlocks {
		t.Fatalf("%s has %d ```yaml blocks; want at least %d", docsFile, len(blocks), minDocBlocks)
	}
	used := map[string]bool{}
	for _, b := range blocks {
		t.Run(fmt.Sprintf("line%d", b.line), func(t *testing.T) {
			where := fmt.Sprintf("%s:%d", docsFile, b.line)
			if b.stubs {
				if b.fragment != "" || b.invalid || b.golden != "" {
					t.Fatalf("%s: a # stubs file block takes no other marker", where)
				}
				checkStubs(t, where, b.text)
				return
			}
			full := hasTopLevelSteps(b.text)
			switch {
			case full && b.fragment != "":
				t.Fatalf("%s: block has a top-level steps key but is marked # fragment: %s", where, b.fragment)
			case !full && b.fragment == "" && !b.invalid:
				t.Fatalf("%s: block has no top-level steps key: complete it or mark it # fragment: top or # fragment: step", where)
			case len(b.errors) > 0 && !b.invalid:
				t.Fatalf("%s: block has # error: but is not marked # invalid", where)
			case b.golden != "" && !b.invalid:
				t.Fatalf("%s: block has # golden: but is not marked # invalid", where)
			}
			if b.golden != "" {
				checkGolden(t, where, b)
				return
			}
			text := wrap(b)
			// Includes in examples read a one-step runbook whatever their path.
			rb, err := runbook.ParseFiles("runbook.yml", []byte(text), func(string) ([]byte, error) {
				return []byte("steps:\n  - name: run\n    command: \"true\"\n"), nil
			})
			if b.invalid {
				if err == nil {
					t.Fatalf("%s: block is marked # invalid but parses:\n%s", where, text)
				}
				for _, want := range b.errors {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s: error lacks %q:\n%v", where, want, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("%s: %v\n--- parsed ---\n%s", where, err, text)
			}
			if rb == nil {
				t.Fatalf("%s: Parse returned no runbook", where)
			}
			keysUsed(t, text, used)
		})
	}
	for section, keys := range runbook.Keys {
		for _, k := range keys {
			if !used[section+"."+k] {
				t.Errorf("%s: no valid example uses the %s key %q", docsFile, section, k)
			}
		}
	}
}

// checkGolden compares a block with a testdata/bad case: the block (markers
// removed) must be its .yml, the block's error its .golden, and the fenced
// block after it must show that golden output.
func checkGolden(t *testing.T, where string, b docBlock) {
	t.Helper()
	yml, err := os.ReadFile(filepath.Join("testdata", "bad", b.golden+".yml"))
	if err != nil {
		t.Fatalf("%s: # golden: %v", where, err)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "bad", b.golden+".golden"))
	if err != nil {
		t.Fatalf("%s: # golden: %v", where, err)
	}
	text := withoutMarkers(b.text)
	if strings.TrimRight(text, "\n") != strings.TrimRight(string(yml), "\n") {
		t.Errorf("%s: block differs from testdata/bad/%s.yml:\n%s", where, b.golden, text)
	}
	_, perr := runbook.Parse(b.golden+".yml", []byte(text))
	if perr == nil {
		t.Fatalf("%s: golden block parses", where)
	}
	want := strings.TrimRight(string(golden), "\n")
	if got := perr.Error(); got != want {
		t.Errorf("%s: error\n%s\nwant (testdata/bad/%s.golden)\n%s", where, got, b.golden, want)
	}
	if b.next != "text" || strings.TrimRight(b.nextText, "\n") != want {
		t.Errorf("%s: the block after a # golden: example must be ```text with testdata/bad/%s.golden; got ```%s\n%s",
			where, b.golden, b.next, b.nextText)
	}
	for _, e := range b.errors {
		if !strings.Contains(perr.Error(), e) {
			t.Errorf("%s: error lacks %q", where, e)
		}
	}
}

// stubKeys are the keys of one stub (agent/local.Stub, which shared may not
// import).
var stubKeys = []string{"exit_code", "output", "outputs", "error"}

// checkStubs checks a stubs file: step name to a stub, or a list of them.
func checkStubs(t *testing.T, where, text string) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("%s: stubs file: %v", where, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode || len(doc.Content[0].Content) == 0 {
		t.Fatalf("%s: a stubs file is a mapping from step name to stub", where)
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		stubs := []*yaml.Node{root.Content[i+1]}
		if v := root.Content[i+1]; v.Kind == yaml.SequenceNode {
			stubs = v.Content
		}
		for _, st := range stubs {
			if st.Kind != yaml.MappingNode {
				t.Errorf("%s: stub of %s is not a mapping", where, root.Content[i].Value)
				continue
			}
			for j := 0; j < len(st.Content); j += 2 {
				if k := st.Content[j].Value; !slices.Contains(stubKeys, k) {
					t.Errorf("%s: stub of %s has unknown key %q (keys: %v)", where, root.Content[i].Value, k, stubKeys)
				}
			}
		}
	}
}

// keysUsed records which keys of runbook.Keys a runbook text uses, as
// "section.key" (section as in runbook.Keys).
func keysUsed(t *testing.T, text string, used map[string]bool) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil || len(doc.Content) == 0 {
		t.Fatalf("yaml: %v", err)
	}
	var mapping func(n *yaml.Node, section string)
	mapping = func(n *yaml.Node, section string) {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if n == nil || n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			used[section+"."+k] = true
			switch {
			case section == "runbook" && k == "global":
				mapping(v, "global")
			case (section == "step" || section == "global") && k == "resources":
				mapping(v, "resources")
			case section == "runbook" && k == "params" && v.Kind == yaml.MappingNode:
				for j := 1; j < len(v.Content); j += 2 {
					mapping(v.Content[j], "param")
				}
			case section == "runbook" && k == "steps" && v.Kind == yaml.SequenceNode:
				for _, s := range v.Content {
					mapping(s, "step")
				}
			case section == "step" && (k == "retry" || k == "assert" || k == "approval"):
				mapping(v, k)
			case section == "runbook" && k == "on":
				mapping(v, "on")
			case section == "on" && (k == "push" || k == "pull_request"):
				mapping(v, "trigger")
			case section == "runbook" && k == "include" && v.Kind == yaml.SequenceNode:
				for _, in := range v.Content {
					mapping(in, "include")
				}
			}
		}
	}
	mapping(doc.Content[0], "runbook")
}
