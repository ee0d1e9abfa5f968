package expr

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokKind uint8

const (
	tEOF tokKind = iota
	tName
	tNumber
	tString
	tTrue
	tFalse
	tNull
	tLParen
	tRParen
	tLBrack
	tRBrack
	tDot
	tComma
	tNot
	tAnd
	tOr
	tEq
	tNe
	tLt
	tLe
	tGt
	tGe
)

var tokText = [...]string{
	tTrue: "true", tFalse: "false", tNull: "null",
	tLParen: "(", tRParen: ")", tLBrack: "[", tRBrack: "]", tDot: ".", tComma: ",",
	tNot: "!", tAnd: "&&", tOr: "||",
	tEq: "==", tNe: "!=", tLt: "<", tLe: "<=", tGt: ">", tGe: ">=",
}

type token struct {
	kind tokKind
	pos  int     // byte offset into the whole source
	text string  // the source text of the token
	str  string  // the value of a string literal
	num  float64 // the value of a number literal
}

// lexer splits src[pos:end] into tokens; offsets are into the whole src.
type lexer struct {
	src string
	pos int
	end int
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isNameStart(c byte) bool { return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isNameChar(c byte) bool { return isNameStart(c) || isDigit(c) || c == '-' }

// isName reports whether s matches [A-Za-z_][A-Za-z0-9_-]*.
func isName(s string) bool {
	if s == "" || !isNameStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (l *lexer) next() (token, *Error) {
	for l.pos < l.end && isSpace(l.src[l.pos]) {
		l.pos++
	}
	start := l.pos
	if start >= l.end {
		return token{kind: tEOF, pos: l.end}, nil
	}
	c := l.src[start]
	two := ""
	if start+1 < l.end {
		two = l.src[start : start+2]
	}
	tok := func(k tokKind, n int) (token, *Error) {
		l.pos = start + n
		return token{kind: k, pos: start, text: l.src[start:l.pos]}, nil
	}
	switch two {
	case "&&":
		return tok(tAnd, 2)
	case "||":
		return tok(tOr, 2)
	case "==":
		return tok(tEq, 2)
	case "!=":
		return tok(tNe, 2)
	case "<=":
		return tok(tLe, 2)
	case ">=":
		return tok(tGe, 2)
	}
	switch c {
	case '(':
		return tok(tLParen, 1)
	case ')':
		return tok(tRParen, 1)
	case '[':
		return tok(tLBrack, 1)
	case ']':
		return tok(tRBrack, 1)
	case '.':
		return tok(tDot, 1)
	case ',':
		return tok(tComma, 1)
	case '!':
		return tok(tNot, 1)
	case '<':
		return tok(tLt, 1)
	case '>':
		return tok(tGt, 1)
	case '=':
		return token{}, errorf(start, "unexpected '='; expected '==' to compare")
	case '&':
		return token{}, errorf(start, "unexpected '&'; expected '&&'")
	case '|':
		return token{}, errorf(start, "unexpected '|'; expected '||'")
	case '\'':
		return l.string()
	case '$':
		if strings.HasPrefix(l.src[start:l.end], "${{") {
			return token{}, errorf(start, "unexpected '${{'; an expression cannot contain '${{' (write the string '${{' if you mean the text)")
		}
	}
	if isDigit(c) || c == '-' {
		return l.number()
	}
	if isNameStart(c) {
		l.pos++
		for l.pos < l.end && isNameChar(l.src[l.pos]) {
			l.pos++
		}
		t := token{kind: tName, pos: start, text: l.src[start:l.pos]}
		switch t.text {
		case "true":
			t.kind = tTrue
		case "false":
			t.kind = tFalse
		case "null":
			t.kind = tNull
		}
		return t, nil
	}
	r, size := utf8.DecodeRuneInString(l.src[start:l.end])
	if r == utf8.RuneError && size <= 1 {
		return token{}, errorf(start, "unexpected byte 0x%02x; expected an expression", c)
	}
	return token{}, errorf(start, "unexpected character %q; expected an expression", r)
}

// string scans a string literal, in which a doubled quote is one quote.
func (l *lexer) string() (token, *Error) {
	start := l.pos
	var b strings.Builder
	i := start + 1
	for {
		j := strings.IndexByte(l.src[i:l.end], '\'')
		if j < 0 {
			return token{}, errorf(start, "unterminated string; expected a closing quote (')")
		}
		b.WriteString(l.src[i : i+j])
		i += j + 1
		if i < l.end && l.src[i] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		break
	}
	l.pos = i
	return token{kind: tString, pos: start, text: l.src[start:i], str: b.String()}, nil
}

// number scans [-]digits[.digits].
func (l *lexer) number() (token, *Error) {
	start := l.pos
	i := start
	if l.src[i] == '-' {
		i++
		if i >= l.end || !isDigit(l.src[i]) {
			return token{}, errorf(start, "unexpected '-'; expected a number after '-' (there is no subtraction)")
		}
	}
	for i < l.end && isDigit(l.src[i]) {
		i++
	}
	if i < l.end && l.src[i] == '.' {
		i++
		if i >= l.end || !isDigit(l.src[i]) {
			return token{}, errorf(start, "invalid number %s; expected a digit after the decimal point", quote(l.src[start:i]))
		}
		for i < l.end && isDigit(l.src[i]) {
			i++
		}
	}
	if i < l.end && (isNameChar(l.src[i]) || l.src[i] == '.') {
		j := i
		for j < l.end && (isNameChar(l.src[j]) || l.src[j] == '.') {
			j++
		}
		return token{}, errorf(start, "invalid number %s; expected digits with at most one decimal point", quote(l.src[start:j]))
	}
	text := l.src[start:i]
	n, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return token{}, errorf(start, "number %s is out of range", quote(text))
	}
	l.pos = i
	return token{kind: tNumber, pos: start, text: text, num: n}, nil
}

// describe names a token for an error message.
func describe(t token, end string) string {
	switch t.kind {
	case tEOF:
		return end
	case tName:
		return quote(t.text)
	case tNumber:
		return "number " + shorten(t.text)
	case tString:
		return "string " + shorten(t.text)
	}
	return quote(tokText[t.kind])
}

// quote puts s in single quotes, shortened if it is long.
func quote(s string) string { return "'" + shorten(s) + "'" }

// shorten cuts s to about 24 bytes, at a rune boundary, and marks the cut.
func shorten(s string) string {
	const max = 24
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
