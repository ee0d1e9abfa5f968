package runbook

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// Limits on what a step may set as outputs.
const (
	MaxOutputBytes = 64 << 10
	MaxOutputs     = 100
)

var outputKeyRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// ParseOutputs reads the file a step wrote at $BATON_OUTPUT: one `key=value`
// per line, or for a multi-line value
//
//	key<<DELIMITER
//	line one
//	line two
//	DELIMITER
//
// A later line for the same key wins. Lines that do not fit are skipped and
// described in the returned problems, with their line number, so the step's
// log can say what was ignored.
func ParseOutputs(data []byte) (map[string]string, []string) {
	var problems []string
	if len(data) > MaxOutputBytes {
		problems = append(problems, fmt.Sprintf("outputs file is %d bytes; only the first %d are read", len(data), MaxOutputBytes))
		data = data[:MaxOutputBytes]
	}
	out := map[string]string{}
	lines := strings.Split(strings.TrimSuffix(string(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))), "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if k, delim, isDoc := strings.Cut(line, "<<"); isDoc && (!ok || len(k) < len(key)) {
			key = k
			start := i
			var body []string
			closed := false
			for i++; i < len(lines); i++ {
				if lines[i] == delim {
					closed = true
					break
				}
				body = append(body, lines[i])
			}
			if delim == "" || !closed {
				problems = append(problems, fmt.Sprintf("line %d: %s<<%s has no closing %q line", start+1, key, delim, delim))
				continue
			}
			value = strings.Join(body, "\n")
		} else if !ok {
			problems = append(problems, fmt.Sprintf("line %d: want key=value or key<<DELIMITER", i+1))
			continue
		}
		if !outputKeyRe.MatchString(key) {
			problems = append(problems, fmt.Sprintf("line %d: output name %q: use letters, digits, '_' and '-'", i+1, key))
			continue
		}
		if _, seen := out[key]; !seen && len(out) == MaxOutputs {
			problems = append(problems, fmt.Sprintf("line %d: more than %d outputs; %q ignored", i+1, MaxOutputs, key))
			continue
		}
		out[key] = value
	}
	return out, problems
}
