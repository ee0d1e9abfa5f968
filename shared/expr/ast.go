package expr

import (
	"maps"
	"slices"
	"strings"
)

// node is one element of a parsed expression.
type node interface {
	// prec is the precedence of the node: how tightly it binds.
	prec() int
}

const (
	precOr = iota + 1
	precAnd
	precNot
	precCompare
	precPrimary
)

type literal struct {
	pos int
	v   Value
}

type reference struct {
	pos  int
	path []string
}

type call struct {
	pos  int
	fn   *function
	args []node
}

type not struct {
	pos int
	x   node
}

type binary struct {
	pos  int // of the operator
	op   tokKind
	l, r node
}

func (*literal) prec() int   { return precPrimary }
func (*reference) prec() int { return precPrimary }
func (*call) prec() int      { return precPrimary }
func (*not) prec() int       { return precNot }
func (b *binary) prec() int {
	switch b.op {
	case tOr:
		return precOr
	case tAnd:
		return precAnd
	}
	return precCompare
}

// function is a built-in function.
type function struct {
	name   string
	params []string
	status bool                             // a status function: reads Context.Status
	eval   func(st Status, a, b Value) bool // a and b are the arguments, if any
}

var functions = map[string]*function{}

func init() {
	for _, f := range []*function{
		{name: "always", status: true, eval: func(Status, Value, Value) bool { return true }},
		{name: "cancelled", status: true, eval: func(s Status, _, _ Value) bool { return s.Cancelled }},
		{name: "contains", params: []string{"haystack", "needle"}, eval: func(_ Status, a, b Value) bool {
			return strings.Contains(a.String(), b.String())
		}},
		{name: "endsWith", params: []string{"s", "suffix"}, eval: func(_ Status, a, b Value) bool {
			return strings.HasSuffix(a.String(), b.String())
		}},
		{name: "failure", status: true, eval: func(s Status, _, _ Value) bool { return s.DependencyFailed && !s.Cancelled }},
		{name: "startsWith", params: []string{"s", "prefix"}, eval: func(_ Status, a, b Value) bool {
			return strings.HasPrefix(a.String(), b.String())
		}},
		{name: "success", status: true, eval: func(s Status, _, _ Value) bool {
			return !s.DependencyFailed && !s.DependencyNotSucceeded && !s.Cancelled
		}},
	} {
		functions[f.name] = f
	}
	functionNames = strings.Join(slices.Sorted(maps.Keys(functions)), ", ")
}

// functionNames is the sorted list of function names, for error messages.
var functionNames string

// writeNode writes the canonical form of n.
func writeNode(b *strings.Builder, n node) {
	switch n := n.(type) {
	case *literal:
		writeLiteral(b, n.v)
	case *reference:
		writePath(b, n.path)
	case *call:
		b.WriteString(n.fn.name)
		b.WriteByte('(')
		for i, a := range n.args {
			if i > 0 {
				b.WriteString(", ")
			}
			writeNode(b, a)
		}
		b.WriteByte(')')
	case *not:
		b.WriteByte('!')
		writeOperand(b, n.x, precNot)
	case *binary:
		// Left-associative || and &&: a right operand of the same operator
		// keeps its parentheses. Comparisons take primaries on both sides.
		lp, rp := n.prec(), n.prec()+1
		if n.prec() == precCompare {
			lp, rp = precPrimary, precPrimary
		}
		writeOperand(b, n.l, lp)
		b.WriteByte(' ')
		b.WriteString(tokText[n.op])
		b.WriteByte(' ')
		writeOperand(b, n.r, rp)
	}
}

func writeOperand(b *strings.Builder, n node, min int) {
	if n.prec() < min {
		b.WriteByte('(')
		writeNode(b, n)
		b.WriteByte(')')
		return
	}
	writeNode(b, n)
}

func writeLiteral(b *strings.Builder, v Value) {
	switch v.kind {
	case null:
		b.WriteString("null")
	case str:
		writeString(b, v.s)
	default:
		b.WriteString(v.String())
	}
}

func writeString(b *strings.Builder, s string) {
	b.WriteByte('\'')
	b.WriteString(strings.ReplaceAll(s, "'", "''"))
	b.WriteByte('\'')
}

// writePath writes a reference path: .name where the segment is a name,
// ['segment'] where it is not.
func writePath(b *strings.Builder, path []string) {
	for i, seg := range path {
		switch {
		case i == 0:
			b.WriteString(seg)
		case isName(seg):
			b.WriteByte('.')
			b.WriteString(seg)
		default:
			b.WriteByte('[')
			writeString(b, seg)
			b.WriteByte(']')
		}
	}
}

func pathString(path []string) string {
	var b strings.Builder
	writePath(&b, path)
	return b.String()
}

// walk calls f for n and every node below it, in source order.
func walk(n node, f func(node)) {
	f(n)
	switch n := n.(type) {
	case *call:
		for _, a := range n.args {
			walk(a, f)
		}
	case *not:
		walk(n.x, f)
	case *binary:
		walk(n.l, f)
		walk(n.r, f)
	}
}
