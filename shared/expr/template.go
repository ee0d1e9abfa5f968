package expr

import "strings"

const (
	openDelim  = "${{"
	closeDelim = "}}"
)

// Template is a parsed string with ${{ }} parts.
type Template struct {
	parts []part
}

// part is literal text (expr == nil) or an expression.
type part struct {
	text string
	expr *Expr
}

// ParseTemplate parses a string that may contain ${{ expression }} parts.
// Offsets in errors, including those from Render, are into src.
func ParseTemplate(src string) (*Template, error) {
	t := &Template{}
	exprs := 0
	for i := 0; i < len(src); {
		j := strings.Index(src[i:], openDelim)
		if j < 0 {
			t.parts = append(t.parts, part{text: src[i:]})
			break
		}
		start := i + j
		if start > i {
			t.parts = append(t.parts, part{text: src[i:start]})
		}
		if exprs++; exprs > MaxTemplateParts {
			return nil, errorf(start, "template has more than %d '${{ }}' parts", MaxTemplateParts)
		}
		end, err := scanExpr(src, start)
		if err != nil {
			return nil, err
		}
		body := start + len(openDelim)
		if end-body > MaxSourceLen {
			return nil, errorf(start, "expression is %d bytes; the limit is %d", end-body, MaxSourceLen)
		}
		e, err := parseRange(src, body, end, "'}}'")
		if err != nil {
			return nil, err
		}
		t.parts = append(t.parts, part{expr: e})
		i = end + len(closeDelim)
	}
	return t, nil
}

// scanExpr finds the "}}" that ends the expression whose "${{" is at
// src[start]. It skips string literals, so '}}' inside one does not count.
func scanExpr(src string, start int) (end int, err error) {
	i := start + len(openDelim)
	for i < len(src) {
		switch {
		case src[i] == '\'':
			q := i
			for i++; ; i++ {
				if i >= len(src) {
					return 0, errorf(q, "unterminated string; expected a closing quote (')")
				}
				if src[i] == '\'' {
					if i+1 < len(src) && src[i+1] == '\'' {
						i++
						continue
					}
					break
				}
			}
			i++
		case strings.HasPrefix(src[i:], closeDelim):
			return i, nil
		default:
			i++
		}
	}
	return 0, errorf(start, "unterminated '${{'; expected '}}' to close it")
}

// Render evaluates the expressions and returns the text with each one
// replaced by its value as a string (null is ""). ctx may be nil for a
// literal template.
func (t *Template) Render(ctx Context) (string, error) {
	if len(t.parts) == 1 && t.parts[0].expr == nil {
		return t.parts[0].text, nil
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.expr == nil {
			b.WriteString(p.text)
			continue
		}
		v, err := p.expr.Eval(ctx)
		if err != nil {
			return "", err
		}
		b.WriteString(v.String())
	}
	return b.String(), nil
}

// IsLiteral reports whether t has no ${{ }} parts, so Render returns the
// source as is.
func (t *Template) IsLiteral() bool {
	for _, p := range t.parts {
		if p.expr != nil {
			return false
		}
	}
	return true
}

// Refs returns every distinct reference path in t's expressions, in source
// order. The slices are the caller's to keep or change.
func (t *Template) Refs() [][]string {
	var out [][]string
	seen := map[string]bool{}
	for _, p := range t.parts {
		if p.expr != nil {
			out = refs(out, seen, p.expr.root)
		}
	}
	return out
}

// String returns the canonical form of t: the text as is, each expression
// as "${{ " + its canonical form + " }}".
func (t *Template) String() string { return t.RewriteRefs(nil) }
