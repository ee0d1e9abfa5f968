package expr

import (
	"math"
	"strconv"
	"strings"
)

// Kind is the type of a Value.
type Kind string

// The kinds of Value.
const (
	KindNull   Kind = "null"
	KindBool   Kind = "bool"
	KindNumber Kind = "number"
	KindString Kind = "string"
)

// Kinds lists every Kind.
func Kinds() []Kind { return []Kind{KindNull, KindBool, KindNumber, KindString} }

type kind uint8

const (
	null kind = iota
	boolean
	number
	str
)

var kindNames = [...]Kind{null: KindNull, boolean: KindBool, number: KindNumber, str: KindString}

// Value is the result of an expression and what Context.Lookup returns. The
// zero Value is null.
type Value struct {
	kind kind
	b    bool
	n    float64
	s    string
}

// BoolValue returns a bool Value.
func BoolValue(b bool) Value { return Value{kind: boolean, b: b} }

// NumberValue returns a number Value.
func NumberValue(n float64) Value { return Value{kind: number, n: n} }

// StringValue returns a string Value.
func StringValue(s string) Value { return Value{kind: str, s: s} }

// Kind returns the kind of v.
func (v Value) Kind() Kind { return kindNames[v.kind] }

// Truthy reports whether v counts as true in a condition: everything but
// false, 0, NaN, "" and null does.
func (v Value) Truthy() bool {
	switch v.kind {
	case boolean:
		return v.b
	case number:
		return v.n != 0 && !math.IsNaN(v.n)
	case str:
		return v.s != ""
	}
	return false
}

// String returns v as text: "" for null, "true" or "false", a number without
// trailing zeros and without an exponent, a string as is.
func (v Value) String() string {
	switch v.kind {
	case boolean:
		return strconv.FormatBool(v.b)
	case number:
		return formatNumber(v.n)
	case str:
		return v.s
	}
	return ""
}

func formatNumber(n float64) string { return strconv.FormatFloat(n, 'f', -1, 64) }

// Equal reports whether v == w under the rules of the == operator (see the
// package documentation).
func (v Value) Equal(w Value) bool {
	if v.kind == w.kind {
		switch v.kind {
		case boolean:
			return v.b == w.b
		case number:
			return v.n == w.n
		case str:
			return v.s == w.s
		}
		return true // null == null
	}
	if v.kind > w.kind {
		v, w = w, v
	}
	// Now v.kind < w.kind: only bool/string and number/string can be equal.
	if w.kind != str {
		return false
	}
	switch v.kind {
	case boolean:
		return strconv.FormatBool(v.b) == w.s
	case number:
		n, ok := parseNumeric(w.s)
		return ok && n == v.n
	}
	return false
}

// order compares v and w for <, <=, > and >=; it returns -1, 0 or +1, and
// ok=false when they are unordered (a NaN). It fails for kinds that have no
// order between them.
func order(v, w Value) (c int, ok bool, msg string) {
	var a, b float64
	switch {
	case v.kind == str && w.kind == str:
		return strings.Compare(v.s, w.s), true, ""
	case v.kind == number && w.kind == number:
		a, b = v.n, w.n
	case v.kind == number && w.kind == str:
		n, isNum := parseNumeric(w.s)
		if !isNum {
			return 0, false, "the string is not a number"
		}
		a, b = v.n, n
	case v.kind == str && w.kind == number:
		n, isNum := parseNumeric(v.s)
		if !isNum {
			return 0, false, "the string is not a number"
		}
		a, b = n, w.n
	default:
		return 0, false, "ordering needs two numbers, two strings, or a number and a numeric string"
	}
	switch {
	case a < b:
		return -1, true, ""
	case a > b:
		return 1, true, ""
	case a == b:
		return 0, true, ""
	}
	return 0, false, "" // NaN: every ordering is false
}

// parseNumeric parses s as a decimal number: optional sign, digits with an
// optional fraction (at least one digit), an optional exponent, surrounding
// white space ignored. Hex, Inf, NaN and underscores are not numbers.
// Numbers too large for a float64 become ±Inf.
func parseNumeric(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && isDigit(s[i]) {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
			digits++
		}
	}
	if digits == 0 {
		return 0, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && isDigit(s[i]) {
			i++
			exp++
		}
		if exp == 0 {
			return 0, false
		}
	}
	if i != len(s) {
		return 0, false
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil && !isRangeError(err) {
		return 0, false
	}
	return n, true
}

func isRangeError(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}
