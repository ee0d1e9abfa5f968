package runbook

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/baton-ci/baton/shared/engine"
)

// Limits that keep a server safe from hostile runbooks.
const (
	MaxSize       = 1 << 20 // bytes of runbook text
	MaxSteps      = 1000
	MaxNameLength = 100
	MaxTimeout    = 24 * time.Hour
	MaxRetries    = 10
	MaxRetryDelay = time.Hour
	MaxPriority   = 100
	// MaxValues bounds the list entries and env variables a runbook holds
	// after YAML aliases are followed, so a small file of aliases to aliases
	// (an "alias bomb") cannot make the server do unbounded work.
	MaxValues = 100_000
	MaxLabels = 20
)

// Keys lists the keys each mapping of a runbook accepts, in documentation
// order. The JSON Schema is checked against it.
var Keys = map[string][]string{
	"runbook":   {"name", "description", "on", "params", "global", "include", "steps"},
	"on":        {"push", "pull_request", "schedule", "api"},
	"trigger":   {"branches"},
	"include":   {"path", "as", "after"},
	"param":     {"type", "required", "default", "values", "description"},
	"global":    {"env", "image", "timeout", "resources", "labels", "secrets"},
	"resources": {"memory", "cpus"},
	"step":      {"name", "command", "image", "depends_on", "env", "if", "cleanup", "outputs", "assert", "secrets", "environment", "runs_on", "priority", "approval", "timeout", "resources", "retry"},
	"assert":    {"exit_codes", "output_matches"},
	"approval":  {"required", "message"},
	"retry":     {"max", "delay", "backoff", "on"},
}

// EnvironmentNameRe is what an environment (a scope of secrets) may be called.
var EnvironmentNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$`)

var (
	stepNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	envNameRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Parse reads runbook text and validates it. file names the source in error
// messages. On failure the error is an Errors value holding every problem
// found, each with file:line:column. A runbook with include needs
// ParseFiles.
func Parse(file string, text []byte) (*Runbook, error) {
	return ParseFiles(file, text, nil)
}

// Loader reads a file of the runbook's repository by its path relative to
// the repository root (already cleaned and checked not to leave it).
type Loader func(path string) ([]byte, error)

// ParseFiles is Parse for a runbook whose includes load reads.
func ParseFiles(file string, text []byte, load Loader) (*Runbook, error) {
	p := &parser{file: file}
	rb := p.parse(text)
	p.resolveIncludes(rb, load, []string{file})
	if len(rb.Steps) == 0 && len(p.errs) == 0 {
		p.errorf(nil, "runbook has no steps: add a steps list or an include")
	}
	p.errs = append(p.errs, validate(file, rb)...)
	if len(p.errs) > 0 {
		return nil, p.errs.sorted(file)
	}
	return rb, nil
}

type parser struct {
	file string
	// included is file when it is an included runbook (positions of its
	// steps carry it), "" for the root.
	included string
	errs     Errors
	// values counts list entries and env variables read, for MaxValues.
	values int
}

// spend accounts for n more values and reports whether the budget allows
// them; the first overrun is reported once.
func (p *parser) spend(n *yaml.Node, count int) bool {
	p.values += count
	if p.values > MaxValues {
		if p.values-count <= MaxValues {
			p.errorf(n, "runbook holds more than %d list entries and variables once YAML aliases are followed", MaxValues)
		}
		return false
	}
	return true
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	var pos Pos
	if n != nil {
		pos = Pos{Line: n.Line, Column: n.Column}
	}
	p.errs = append(p.errs, Error{File: p.file, Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) parse(text []byte) *Runbook {
	rb := &Runbook{}
	if len(text) > MaxSize {
		p.errorf(nil, "runbook is %d bytes; the limit is %d", len(text), MaxSize)
		return rb
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		p.errs = append(p.errs, yamlError(p.file, err))
		return rb
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		p.errorf(nil, "runbook is empty; it needs at least a steps list")
		return rb
	}
	root := doc.Content[0]
	if !p.expect(root, yaml.MappingNode, "the runbook") {
		return rb
	}
	var stepsNode *yaml.Node
	p.fields(root, "runbook", Keys["runbook"], func(key string, k, v *yaml.Node) {
		switch key {
		case "params":
			rb.Params = p.params(v)
		case "include":
			rb.Includes = p.includes(v)
		case "name":
			rb.Name = p.scalar(v, "name")
		case "description":
			rb.Description = p.scalar(v, "description")
		case "on":
			rb.On = p.on(v)
		case "global":
			p.global(v, &rb.Global)
		case "steps":
			stepsNode = v
		}
	})
	if stepsNode == nil {
		if len(rb.Includes) == 0 {
			p.errorf(root, "runbook has no steps: add a steps list")
		}
		return rb
	}
	if !p.expect(stepsNode, yaml.SequenceNode, "steps") {
		return rb
	}
	if len(stepsNode.Content) == 0 {
		p.errorf(stepsNode, "steps is empty: add at least one step")
	}
	if len(stepsNode.Content) > MaxSteps {
		p.errorf(stepsNode, "runbook has %d steps; the limit is %d", len(stepsNode.Content), MaxSteps)
		return rb
	}
	for _, sn := range stepsNode.Content {
		rb.Steps = append(rb.Steps, p.step(sn))
	}
	return rb
}

func (p *parser) global(n *yaml.Node, g *Global) {
	if !p.expect(n, yaml.MappingNode, "global") {
		return
	}
	p.fields(n, "global", Keys["global"], func(key string, k, v *yaml.Node) {
		switch key {
		case "env":
			g.Env = p.env(v, "global.env")
		case "image":
			g.Image = p.scalar(v, "global.image")
		case "timeout":
			g.Timeout = p.duration(v, "global.timeout", time.Second, MaxTimeout)
		case "resources":
			g.Resources = p.resources(v, "global.resources")
		case "labels":
			g.Labels = p.labels(v, "global.labels")
		case "secrets":
			g.Secrets = p.secretNames(v, "global.secrets")
		}
	})
}

func (p *parser) step(n *yaml.Node) Step {
	s := Step{Pos: Pos{File: p.included, Line: n.Line, Column: n.Column}}
	if !p.expect(n, yaml.MappingNode, "a step") {
		return s
	}
	// badName and badCommand: a value that is not a string was reported
	// already; do not also report it as missing.
	var hasCommand, badName, badCommand bool
	p.fields(n, "step", Keys["step"], func(key string, k, v *yaml.Node) {
		switch key {
		case "name":
			badName = deref(v).Kind != yaml.ScalarNode
			s.Name = p.scalar(v, "step name")
		case "command":
			hasCommand = true
			if deref(v).Kind == yaml.SequenceNode {
				s.Args = p.args(v)
				badCommand = s.Args == nil
				break
			}
			if badCommand = deref(v).Kind != yaml.ScalarNode; badCommand {
				p.errorf(v, "command must be a string (run with sh -c) or a list (program and arguments, no shell)")
				break
			}
			s.Command = p.scalar(v, "command")
		case "image":
			s.Image = p.scalar(v, "image")
		case "depends_on":
			s.DependsOn = p.names(v, "depends_on")
		case "env":
			s.Env = p.env(v, "env")
		case "timeout":
			s.Timeout = p.duration(v, "timeout", time.Second, MaxTimeout)
		case "resources":
			s.Resources = p.resources(v, "resources")
		case "retry":
			s.Retry = p.retry(v)
		case "assert":
			s.Assert = p.assert(v)
		case "runs_on":
			s.RunsOn = p.labels(v, "runs_on")
		case "secrets":
			s.Secrets = p.secretNames(v, "secrets")
		case "environment":
			s.Environment = p.scalar(v, "environment")
			if s.Environment != "" && !EnvironmentNameRe.MatchString(s.Environment) {
				p.errorf(v, "environment %q: use 1 to 50 letters, digits, '-' or '_'", s.Environment)
			}
		case "approval":
			s.Approval = p.approval(v)
		case "priority":
			text := p.scalar(v, "priority")
			n, err := strconv.Atoi(text)
			if err != nil || n < -MaxPriority || n > MaxPriority {
				p.errorf(v, "priority %q: give a whole number from %d to %d (higher runs first)", text, -MaxPriority, MaxPriority)
			}
			s.Priority = n
		case "if":
			s.If = p.scalar(v, "if")
			if strings.TrimSpace(s.If) == "" {
				p.errorf(v, "if is empty: give a condition such as always() or failure()")
			}
		case "cleanup":
			b, err := strconv.ParseBool(p.scalar(v, "cleanup"))
			if err != nil {
				p.errorf(v, "cleanup must be true or false")
			}
			s.Cleanup = b
		case "outputs":
			s.Outputs = p.names(v, "outputs")
			if s.Outputs == nil {
				s.Outputs = []string{}
			}
			for _, o := range s.Outputs {
				if !outputKeyRe.MatchString(o) {
					p.errorf(v, "output name %q: use letters, digits, '_' and '-'", o)
				}
			}
		}
	})
	label := "step"
	switch {
	case badName:
	case s.Name == "":
		p.errorf(n, "step has no name: add name: <unique name>")
	case len(s.Name) > MaxNameLength:
		p.errorf(n, "step name %.20q... is %d characters; the limit is %d", s.Name, len(s.Name), MaxNameLength)
	case !stepNameRe.MatchString(s.Name):
		p.errorf(n, "step name %q: use letters, digits, '-', '_' and '.', starting with a letter or digit", s.Name)
	default:
		label = fmt.Sprintf("step %q", s.Name)
	}
	if !badCommand && (!hasCommand || (s.Args == nil && strings.TrimSpace(s.Command) == "")) {
		p.errorf(n, "%s has no command: add command: <shell command>", label)
	}
	return s
}

// args reads the exec form of command: a non-empty list of strings.
func (p *parser) args(n *yaml.Node) []string {
	n = deref(n)
	if !p.spend(n, len(n.Content)) {
		return nil
	}
	if len(n.Content) == 0 {
		p.errorf(n, "command list is empty: give the program and its arguments, or a string for sh -c")
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		if deref(c).Kind != yaml.ScalarNode {
			p.errorf(c, "command list entries must be strings")
			return nil
		}
		out = append(out, deref(c).Value)
	}
	return out
}

// duration reads a Go duration such as 90s or 1h30m within [least, most].
func (p *parser) duration(n *yaml.Node, what string, least, most time.Duration) time.Duration {
	v := p.scalar(n, what)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		p.errorf(n, "%s %q is not a duration: use a Go duration such as 30s, 5m or 1h30m", what, v)
		return 0
	}
	if d < least || d > most {
		p.errorf(n, "%s %s is out of range: use %s to %s", what, d, least, most)
		return 0
	}
	return d
}

var labelRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*(=[A-Za-z0-9_.:/-]+)?$`)

// secretNames reads a list of secret names, which become variable names.
func (p *parser) secretNames(n *yaml.Node, what string) []string {
	names := p.names(n, what)
	for _, name := range names {
		switch {
		case !envNameRe.MatchString(name):
			p.errorf(n, "%s: %q is not a valid variable name (letters, digits, '_'; not starting with a digit)", what, name)
		case name == "CI" || strings.HasPrefix(name, "BATON"):
			p.errorf(n, "%s: %s is set by Baton in every step and cannot be a secret", what, name)
		}
	}
	return names
}

// ValidLabel reports whether l is an agent label: NAME or NAME=VALUE.
func ValidLabel(l string) bool { return labelRe.MatchString(l) && len(l) <= MaxNameLength }

// labels reads a list of agent labels: NAME or NAME=VALUE.
func (p *parser) labels(n *yaml.Node, what string) []string {
	out := p.names(n, what)
	if out == nil {
		out = []string{}
	}
	if len(out) > MaxLabels {
		p.errorf(n, "%s has %d labels; the limit is %d", what, len(out), MaxLabels)
	}
	for _, l := range out {
		if !ValidLabel(l) {
			p.errorf(n, "%s: label %q: use NAME or NAME=VALUE (letters, digits, '-', '_', '.')", what, l)
		}
	}
	return out
}

// approval reads approval: true, or {required, message}.
func (p *parser) approval(n *yaml.Node) *Approval {
	a := &Approval{Required: true}
	if v := deref(n); v.Kind == yaml.ScalarNode {
		b, err := strconv.ParseBool(v.Value)
		if err != nil {
			p.errorf(n, "approval must be true, false or {required, message}")
		}
		a.Required = b
		return a
	}
	if !p.expect(n, yaml.MappingNode, "approval") {
		return a
	}
	p.fields(n, "approval", Keys["approval"], func(key string, k, v *yaml.Node) {
		switch key {
		case "required":
			b, err := strconv.ParseBool(p.scalar(v, "approval.required"))
			if err != nil {
				p.errorf(v, "approval.required must be true or false")
			}
			a.Required = b
		case "message":
			a.Message = p.scalar(v, "approval.message")
		}
	})
	return a
}

// assert reads assert: exit_codes (a list, or one code) and output_matches
// (an RE2 regular expression).
func (p *parser) assert(n *yaml.Node) *Assert {
	a := &Assert{}
	if !p.expect(n, yaml.MappingNode, "assert") {
		return a
	}
	p.fields(n, "assert", Keys["assert"], func(key string, k, v *yaml.Node) {
		switch key {
		case "exit_codes":
			for _, c := range p.names(v, "assert.exit_codes") {
				code, err := strconv.Atoi(c)
				if err != nil || code < 0 || code > 255 {
					p.errorf(v, "assert.exit_codes: %q is not an exit code (0 to 255)", c)
					continue
				}
				a.ExitCodes = append(a.ExitCodes, code)
			}
		case "output_matches":
			a.OutputMatches = p.scalar(v, "assert.output_matches")
			if _, err := regexp.Compile(a.OutputMatches); err != nil {
				p.errorf(v, "assert.output_matches is not a valid regular expression (RE2 syntax): %v", err)
			}
		}
	})
	return a
}

// retry reads retry: either a number of retries, or a mapping with max,
// delay, backoff and on.
func (p *parser) retry(n *yaml.Node) Retry {
	r := Retry{On: DefaultRetryOn()}
	if v := deref(n); v.Kind == yaml.ScalarNode {
		r.Max = p.retryMax(n, "retry")
		return r
	}
	if !p.expect(n, yaml.MappingNode, "retry") {
		return r
	}
	hasMax := false
	defer func() {
		if !hasMax {
			p.errorf(n, "retry has no max: give the number of retries (retry: {max: 2, ...} or retry: 2)")
		}
	}()
	p.fields(n, "retry", Keys["retry"], func(key string, k, v *yaml.Node) {
		switch key {
		case "max":
			hasMax = true
			r.Max = p.retryMax(v, "retry.max")
		case "delay":
			r.Delay = p.duration(v, "retry.delay", 0, MaxRetryDelay)
		case "backoff":
			switch b := p.scalar(v, "retry.backoff"); b {
			case "constant":
			case "exponential":
				r.Exponential = true
			default:
				p.errorf(v, "retry.backoff %q: use constant or exponential", b)
			}
		case "on":
			r.On = p.reasons(v)
		}
	})
	return r
}

func (p *parser) retryMax(n *yaml.Node, what string) int {
	v := p.scalar(n, what)
	var max int
	if _, err := fmt.Sscan(v, &max); err != nil || fmt.Sprint(max) != v || max < 0 || max > MaxRetries {
		p.errorf(n, "%s %q: give the number of retries, 0 to %d", what, v, MaxRetries)
		return 0
	}
	return max
}

func (p *parser) reasons(n *yaml.Node) []engine.Reason {
	var out []engine.Reason
	for _, name := range p.names(n, "retry.on") {
		r := engine.Reason(name)
		if !r.Valid() || r == engine.ReasonCancelled || r == engine.ReasonPayloadRejected {
			valid := DefaultRetryOn()
			list := make([]string, len(valid))
			for i, v := range valid {
				list[i] = string(v)
			}
			p.errorf(n, "retry.on %q is not a failure reason that can be retried: use %s", name, strings.Join(list, ", "))
			continue
		}
		out = append(out, r)
	}
	return out
}

// names reads depends_on: a list of step names, or a single name.
func (p *parser) names(n *yaml.Node, what string) []string {
	if v := deref(n); v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		return []string{v.Value}
	} else if v.Kind == yaml.ScalarNode {
		return nil
	}
	if !p.expect(n, yaml.SequenceNode, what) || !p.spend(n, len(n.Content)) {
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		if deref(c).Kind != yaml.ScalarNode {
			if what == "depends_on" {
				p.errorf(c, "depends_on entries must be step names")
			} else {
				p.errorf(c, "%s entries must be single values", what)
			}
			continue
		}
		out = append(out, deref(c).Value)
	}
	return out
}

func (p *parser) env(n *yaml.Node, what string) map[string]string {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if !p.expect(n, yaml.MappingNode, what) || !p.spend(n, len(n.Content)/2) {
		return nil
	}
	env := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !envNameRe.MatchString(k.Value) {
			p.errorf(k, "%s: %q is not a valid variable name (letters, digits, '_'; not starting with a digit)", what, k.Value)
			continue
		}
		if k.Value == "CI" || strings.HasPrefix(k.Value, "BATON") {
			p.errorf(k, "%s: %s is set by Baton in every step and cannot be overridden", what, k.Value)
			continue
		}
		if deref(v).Kind != yaml.ScalarNode {
			p.errorf(v, "%s.%s must be a string, number or boolean", what, k.Value)
			continue
		}
		v = deref(v)
		if v.Tag == "!!null" {
			env[k.Value] = ""
			continue
		}
		env[k.Value] = v.Value
	}
	return env
}

func (p *parser) scalar(n *yaml.Node, what string) string {
	v := deref(n)
	if v.Kind != yaml.ScalarNode {
		p.errorf(n, "%s must be a string", what)
		return ""
	}
	if v.Tag == "!!null" {
		return ""
	}
	return v.Value
}

// deref returns the node an alias (*name) stands for; other nodes are
// returned as they are. Errors are still reported at n, where the alias is used.
func deref(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func (p *parser) expect(n *yaml.Node, kind yaml.Kind, what string) bool {
	if n.Kind == kind {
		return true
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil && n.Alias.Kind == kind {
		*n = *n.Alias
		return true
	}
	p.errorf(n, "%s must be %s, not %s", what, kindName(kind), kindName(n.Kind))
	return false
}

// fields calls fn for each key of a mapping, reporting unknown and repeated keys.
func (p *parser) fields(n *yaml.Node, what string, known []string, fn func(key string, k, v *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !contains(known, k.Value) {
			msg := fmt.Sprintf("unknown %s key %q", what, k.Value)
			if s := nearest(k.Value, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			} else {
				msg += fmt.Sprintf(" (valid keys: %s)", strings.Join(known, ", "))
			}
			p.errorf(k, "%s", msg)
			continue
		}
		if seen[k.Value] {
			p.errorf(k, "%s key %q appears twice", what, k.Value)
			continue
		}
		seen[k.Value] = true
		fn(k.Value, k, v)
	}
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "a mapping (key: value)"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	case yaml.AliasNode:
		return "an alias"
	}
	return "empty"
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserProblems are the messages of yaml.v3 parser (not scanner) errors.
// yaml.v3 reports their line counting from 0, so they need one added.
var yamlParserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"did not find expected key":              true,
	"did not find expected '-' indicator":    true,
	"did not find expected node content":     true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found duplicate %TAG directive":         true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// yamlError converts a yaml.v3 error. yaml.v3 gives at most a line, never a
// column, so Column stays 0 and the message reads file:line: ...
func yamlError(file string, err error) Error {
	msg := err.Error()
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if yamlParserProblems[m[2]] {
			line++
		}
		return Error{File: file, Pos: Pos{Line: line}, Msg: "invalid YAML: " + m[2]}
	}
	return Error{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// nearest returns the known key within edit distance 2 of s, if any.
func nearest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := distance(strings.ToLower(s), k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the Levenshtein edit distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
