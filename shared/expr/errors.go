package expr

import "fmt"

// Limits on what Parse, ParseCondition and ParseTemplate accept.
const (
	MaxSourceLen     = 4096 // bytes of one expression (a whole condition, or one ${{ }} part)
	MaxDepth         = 32   // nested parentheses, "!" and function calls
	MaxTemplateParts = 100  // ${{ }} expressions in one template
)

// Error is a problem with an expression: a syntax error from parsing, or an
// evaluation error (a failed lookup, an ordering of mismatched kinds).
type Error struct {
	// Offset is the 0-based byte offset into the parsed source (the whole
	// template or condition, not only the expression) where the problem is.
	Offset int
	// Msg says what is wrong and, for syntax errors, what was expected.
	Msg string
	// Err is the cause, if any: the error Context.Lookup returned.
	Err error
}

// Error returns "column N: msg", where N is Offset+1 (a byte column within
// the expression source, which is on one line in most runbooks).
func (e *Error) Error() string {
	return fmt.Sprintf("column %d: %s", e.Offset+1, e.Msg)
}

// Unwrap returns the cause, so errors.Is and errors.As see through an Error.
func (e *Error) Unwrap() error { return e.Err }

func errorf(offset int, format string, args ...any) *Error {
	return &Error{Offset: offset, Msg: fmt.Sprintf(format, args...)}
}
