package expr

import "strings"

// RewriteRefs returns e's canonical form with every reference path replaced
// by fn(path). fn gets a copy it may change and return.
func (e *Expr) RewriteRefs(fn func(path []string) []string) string {
	var b strings.Builder
	writeNode(&b, mapRefs(e.root, fn))
	return b.String()
}

// RewriteRefs returns t with every reference in its expressions replaced by
// fn(path) (nil: unchanged); literal text is kept as written, expressions in
// canonical form.
func (t *Template) RewriteRefs(fn func(path []string) []string) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.expr == nil {
			b.WriteString(p.text)
			continue
		}
		root := p.expr.root
		if fn != nil {
			root = mapRefs(root, fn)
		}
		b.WriteString("${{ ")
		writeNode(&b, root)
		b.WriteString(" }}")
	}
	return b.String()
}

// mapRefs copies n with its references rewritten; other nodes are shared
// only when nothing below them changes, which copying keeps simple.
func mapRefs(n node, fn func([]string) []string) node {
	switch n := n.(type) {
	case *reference:
		return &reference{pos: n.pos, path: fn(append([]string(nil), n.path...))}
	case *call:
		c := &call{pos: n.pos, fn: n.fn, args: make([]node, len(n.args))}
		for i, a := range n.args {
			c.args[i] = mapRefs(a, fn)
		}
		return c
	case *not:
		return &not{pos: n.pos, x: mapRefs(n.x, fn)}
	case *binary:
		return &binary{pos: n.pos, op: n.op, l: mapRefs(n.l, fn), r: mapRefs(n.r, fn)}
	}
	return n
}
