package cacher

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/baton-ci/baton/shared/runbook"
)

// encodeOutput writes name=value in the $BATON_OUTPUT format; a value with
// a line break becomes a heredoc with a delimiter it does not contain.
func encodeOutput(name, value string) []byte {
	if !strings.ContainsAny(value, "\r\n") {
		return []byte(name + "=" + value + "\n")
	}
	for {
		b := make([]byte, 8)
		rand.Read(b)
		delim := "BATON_EOF_" + hex.EncodeToString(b)
		if !strings.Contains(value, delim) {
			return []byte(name + "<<" + delim + "\n" + value + "\n" + delim + "\n")
		}
	}
}

// checkOutputName reports why name cannot name an output.
func checkOutputName(name string) error {
	if name == "" || strings.ContainsAny(name, "=<\r\n") {
		return fmt.Errorf("output name %q: use letters, digits, '_' and '-'", name)
	}
	if _, problems := runbook.ParseOutputs([]byte(name + "=x")); len(problems) > 0 {
		return fmt.Errorf("output name %q: use letters, digits, '_' and '-'", name)
	}
	return nil
}

// JoinOutputs appends what a step set with `cacher output` to what it
// wrote to $BATON_OUTPUT, so one runbook.ParseOutputs applies the same
// rules and limits to both; cacher's values come last and win.
func JoinOutputs(file, cacher []byte) []byte {
	if len(cacher) == 0 {
		return file
	}
	out := bytes.Clone(file)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, cacher...)
}
