package runbook

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a runbook, with where it is.
type Error struct {
	File string
	Pos  Pos
	Msg  string
}

func (e Error) Error() string {
	file := e.File
	if file == "" {
		file = "runbook.yml"
	}
	if e.Pos.Line == 0 {
		return fmt.Sprintf("%s: %s", file, e.Msg)
	}
	if e.Pos.Column == 0 {
		return fmt.Sprintf("%s:%d: %s", file, e.Pos.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", file, e.Pos.Line, e.Pos.Column, e.Msg)
}

// Errors is every problem found in a runbook, in source order.
type Errors []Error

func (es Errors) Error() string {
	msgs := es.Strings()
	if len(msgs) == 1 {
		return msgs[0]
	}
	return fmt.Sprintf("%d problems:\n%s", len(msgs), strings.Join(msgs, "\n"))
}

// Strings returns each error as "file:line:col: message" ("file:line: message"
// when the column is unknown, "file: message" when the line is too).
func (es Errors) Strings() []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Error()
	}
	return out
}

// sorted orders errors by file (the root file first), line and column.
func (es Errors) sorted(root string) Errors {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].File != es[j].File {
			if es[i].File == root || es[j].File == root {
				return es[i].File == root
			}
			return es[i].File < es[j].File
		}
		if es[i].Pos.Line != es[j].Pos.Line {
			return es[i].Pos.Line < es[j].Pos.Line
		}
		return es[i].Pos.Column < es[j].Pos.Column
	})
	return es
}
