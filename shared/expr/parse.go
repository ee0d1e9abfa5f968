package expr

import (
	"fmt"
	"strings"
)

// Expr is a parsed expression.
type Expr struct {
	root node
}

// Parse parses one expression, without a ${{ }} wrapper.
func Parse(src string) (*Expr, error) {
	if len(src) > MaxSourceLen {
		return nil, errorf(0, "expression is %d bytes; the limit is %d", len(src), MaxSourceLen)
	}
	return parseRange(src, 0, len(src), "end of expression")
}

// ParseCondition parses the value of an if: key: a bare expression, or one
// expression wrapped whole in ${{ }} (white space around it is ignored).
// The result is the condition as written; see [Expr.ImplicitSuccess].
func ParseCondition(src string) (*Expr, error) {
	if len(src) > MaxSourceLen {
		return nil, errorf(0, "condition is %d bytes; the limit is %d", len(src), MaxSourceLen)
	}
	start := 0
	for start < len(src) && isSpace(src[start]) {
		start++
	}
	if !strings.HasPrefix(src[start:], openDelim) {
		return parseRange(src, 0, len(src), "end of expression")
	}
	end, err := scanExpr(src, start)
	if err != nil {
		return nil, err
	}
	rest := end + len(closeDelim)
	for rest < len(src) && isSpace(src[rest]) {
		rest++
	}
	if rest < len(src) {
		return nil, errorf(rest, "unexpected text after '}}'; expected the end of the condition "+
			"(a condition is a bare expression or a single ${{ }})")
	}
	return parseRange(src, start+len(openDelim), end, "'}}'")
}

// parseRange parses src[start:end] as one expression. eof names the end
// for error messages.
func parseRange(src string, start, end int, eof string) (*Expr, error) {
	p := &parser{lx: lexer{src: src, pos: start, end: end}, eof: eof}
	if err := p.advance(); err != nil {
		return nil, err
	}
	root, err := p.or("an expression")
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.unexpected("an operator or " + eof)
	}
	return &Expr{root: root}, nil
}

type parser struct {
	lx    lexer
	tok   token
	depth int
	eof   string // what the end of the source is called: "end of expression" or "'}}'"
}

func (p *parser) advance() error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// unexpected reports the current token.
func (p *parser) unexpected(expected string) error {
	return errorf(p.tok.pos, "unexpected %s; expected %s", describe(p.tok, p.eof), expected)
}

// enter counts one level of nesting that starts at pos.
func (p *parser) enter(pos int) error {
	p.depth++
	if p.depth > MaxDepth {
		return errorf(pos, "expression nests more than %d levels deep", MaxDepth)
	}
	return nil
}

// or parses Or; what is what the caller expects, for the error message when
// there is no expression at all.
func (p *parser) or(what string) (node, error) {
	l, err := p.and(what)
	if err != nil {
		return nil, err
	}
	for p.tok.kind == tOr {
		pos := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		r, err := p.and("an expression after '||'")
		if err != nil {
			return nil, err
		}
		l = &binary{pos: pos, op: tOr, l: l, r: r}
	}
	return l, nil
}

func (p *parser) and(what string) (node, error) {
	l, err := p.not(what)
	if err != nil {
		return nil, err
	}
	for p.tok.kind == tAnd {
		pos := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		r, err := p.not("an expression after '&&'")
		if err != nil {
			return nil, err
		}
		l = &binary{pos: pos, op: tAnd, l: l, r: r}
	}
	return l, nil
}

func (p *parser) not(what string) (node, error) {
	if p.tok.kind != tNot {
		return p.comparison(what)
	}
	pos := p.tok.pos
	if err := p.enter(pos); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	x, err := p.not("an expression after '!'")
	if err != nil {
		return nil, err
	}
	p.depth--
	return &not{pos: pos, x: x}, nil
}

func isCompare(k tokKind) bool { return tEq <= k && k <= tGe }

func (p *parser) comparison(what string) (node, error) {
	l, err := p.primary(what)
	if err != nil {
		return nil, err
	}
	if !isCompare(p.tok.kind) {
		return l, nil
	}
	op := p.tok
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tNot {
		return nil, p.unexpected(fmt.Sprintf("a value after '%s' (put a negation in parentheses: (!x))", op.text))
	}
	r, err := p.primary(fmt.Sprintf("a value after '%s'", op.text))
	if err != nil {
		return nil, err
	}
	if isCompare(p.tok.kind) {
		return nil, errorf(p.tok.pos, "unexpected '%s'; comparisons cannot be chained (use '&&', or parentheses around one comparison)", p.tok.text)
	}
	return &binary{pos: op.pos, op: op.kind, l: l, r: r}, nil
}

func (p *parser) primary(what string) (node, error) {
	t := p.tok
	switch t.kind {
	case tNumber:
		return &literal{pos: t.pos, v: NumberValue(t.num)}, p.advance()
	case tString:
		return &literal{pos: t.pos, v: StringValue(t.str)}, p.advance()
	case tTrue, tFalse:
		return &literal{pos: t.pos, v: BoolValue(t.kind == tTrue)}, p.advance()
	case tNull:
		return &literal{pos: t.pos, v: Value{}}, p.advance()
	case tLParen:
		if err := p.enter(t.pos); err != nil {
			return nil, err
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		x, err := p.or("an expression after '('")
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tRParen {
			return nil, p.unexpected(fmt.Sprintf("an operator or ')' to close the '(' at column %d", t.pos+1))
		}
		p.depth--
		return x, p.advance()
	case tName:
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind == tLParen {
			return p.call(t)
		}
		return p.reference(t)
	}
	return nil, p.unexpected(what)
}

// reference parses the accessors after the first name of a reference.
func (p *parser) reference(first token) (node, error) {
	ref := &reference{pos: first.pos, path: []string{first.text}}
	for {
		switch p.tok.kind {
		case tDot:
			if err := p.advance(); err != nil {
				return nil, err
			}
			switch p.tok.kind {
			case tName, tTrue, tFalse, tNull:
				ref.path = append(ref.path, p.tok.text)
			default:
				return nil, p.unexpected("a property name after '.'")
			}
		case tLBrack:
			open := p.tok.pos
			if err := p.advance(); err != nil {
				return nil, err
			}
			if p.tok.kind != tString {
				return nil, p.unexpected("a quoted property name after '[', like ['name']")
			}
			ref.path = append(ref.path, p.tok.str)
			if err := p.advance(); err != nil {
				return nil, err
			}
			if p.tok.kind != tRBrack {
				return nil, p.unexpected(fmt.Sprintf("']' to close the '[' at column %d", open+1))
			}
		case tLParen:
			return nil, p.unexpected("an operator or " + p.eof + " (only the built-in functions can be called)")
		default:
			return ref, nil
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
}

// call parses a function call; the current token is its '('.
func (p *parser) call(name token) (node, error) {
	fn := functions[name.text]
	if fn == nil {
		for n, f := range functions {
			if strings.EqualFold(n, name.text) {
				return nil, errorf(name.pos, "unknown function '%s'; did you mean %s?", shorten(name.text), f.name)
			}
		}
		return nil, errorf(name.pos, "unknown function '%s'; expected one of %s", shorten(name.text), functionNames)
	}
	open := p.tok.pos
	if err := p.enter(name.pos); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	c := &call{pos: name.pos, fn: fn}
	if p.tok.kind != tRParen {
		what := "an argument or ')'"
		for {
			a, err := p.or(what)
			if err != nil {
				return nil, err
			}
			c.args = append(c.args, a)
			if p.tok.kind == tRParen {
				break
			}
			if p.tok.kind != tComma {
				return nil, p.unexpected(fmt.Sprintf("an operator, ',' or ')' to close the '(' at column %d", open+1))
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
			what = "an argument after ','"
		}
	}
	p.depth--
	if len(c.args) != len(fn.params) {
		if len(fn.params) == 0 {
			return nil, errorf(name.pos, "%s() takes no arguments, got %d", fn.name, len(c.args))
		}
		return nil, errorf(name.pos, "%s(%s) takes %d arguments, got %d",
			fn.name, strings.Join(fn.params, ", "), len(fn.params), len(c.args))
	}
	return c, p.advance()
}

// String returns the canonical form of e: single spaces around operators,
// parentheses only where needed, numbers and strings written the way
// Value.String and the grammar do. Parsing it again gives the same String.
func (e *Expr) String() string {
	var b strings.Builder
	writeNode(&b, e.root)
	return b.String()
}

// Refs returns every distinct reference path in e, in source order. The
// slices are the caller's to keep or change.
func (e *Expr) Refs() [][]string { return refs(nil, map[string]bool{}, e.root) }

func refs(out [][]string, seen map[string]bool, root node) [][]string {
	walk(root, func(n node) {
		r, ok := n.(*reference)
		if !ok {
			return
		}
		var key strings.Builder
		for _, seg := range r.path {
			fmt.Fprintf(&key, "%d:%s", len(seg), seg)
		}
		if seen[key.String()] {
			return
		}
		seen[key.String()] = true
		out = append(out, append([]string(nil), r.path...))
	})
	return out
}

// UsesStatus reports whether e calls a status function: success(),
// failure(), always() or cancelled().
func (e *Expr) UsesStatus() bool {
	uses := false
	walk(e.root, func(n node) {
		if c, ok := n.(*call); ok && c.fn.status {
			uses = true
		}
	})
	return uses
}

// ImplicitSuccess applies GitHub's rule for conditions: it returns e if e
// calls a status function, and otherwise an Expr that means
// success() && (e). The engine evaluates cond.ImplicitSuccess() for a step's
// if:, so that a step whose dependency failed is skipped unless its condition
// mentions the status. Error offsets still point into e's source.
func (e *Expr) ImplicitSuccess() *Expr {
	if e.UsesStatus() {
		return e
	}
	return &Expr{root: &binary{pos: 0, op: tAnd, l: &call{fn: functions["success"]}, r: e.root}}
}
