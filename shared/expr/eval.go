package expr

import (
	"errors"
	"fmt"
)

// Context is what an expression is evaluated against.
type Context interface {
	// Lookup returns the value at a reference path, such as
	// ["steps", "build", "outputs", "version"]. The caller decides which
	// paths exist: an unknown path is an error, which Eval returns wrapped in
	// an *Error that points at the reference. Lookup must not modify or keep
	// path.
	Lookup(path []string) (Value, error)
	// Status is the state the status functions read. It is called only when
	// the expression calls one.
	Status() Status
}

// Status is what the status functions of a step's condition see.
type Status struct {
	// DependencyFailed is true when a step this one depends on failed.
	DependencyFailed bool
	// DependencyNotSucceeded is true when a step this one depends on ended
	// without succeeding for any reason (failed, skipped, cancelled):
	// success() is false then, as it is for a step with no condition.
	DependencyNotSucceeded bool
	// Cancelled is true when the run was cancelled.
	Cancelled bool
}

// Eval evaluates e. ctx may be nil when e has no references and calls no
// status function. Errors are *Error values with an offset into e's source.
func (e *Expr) Eval(ctx Context) (Value, error) {
	if ctx == nil {
		ctx = noContext{}
	}
	return eval(ctx, e.root)
}

// Bool evaluates e and reports whether the result is truthy.
func (e *Expr) Bool(ctx Context) (bool, error) {
	v, err := e.Eval(ctx)
	if err != nil {
		return false, err
	}
	return v.Truthy(), nil
}

type noContext struct{}

func (noContext) Lookup([]string) (Value, error) {
	return Value{}, errors.New("no context to look it up in")
}
func (noContext) Status() Status { return Status{} }

func eval(ctx Context, n node) (Value, error) {
	switch n := n.(type) {
	case *literal:
		return n.v, nil
	case *reference:
		v, err := ctx.Lookup(n.path)
		if err != nil {
			return Value{}, &Error{Offset: n.pos, Msg: fmt.Sprintf("%s: %v", pathString(n.path), err), Err: err}
		}
		return v, nil
	case *not:
		v, err := eval(ctx, n.x)
		if err != nil {
			return Value{}, err
		}
		return BoolValue(!v.Truthy()), nil
	case *call:
		var st Status
		if n.fn.status {
			st = ctx.Status()
		}
		var args [2]Value
		for i, a := range n.args {
			v, err := eval(ctx, a)
			if err != nil {
				return Value{}, err
			}
			args[i] = v
		}
		return BoolValue(n.fn.eval(st, args[0], args[1])), nil
	case *binary:
		l, err := eval(ctx, n.l)
		if err != nil {
			return Value{}, err
		}
		switch n.op {
		case tAnd:
			if !l.Truthy() {
				return BoolValue(false), nil
			}
			r, err := eval(ctx, n.r)
			if err != nil {
				return Value{}, err
			}
			return BoolValue(r.Truthy()), nil
		case tOr:
			if l.Truthy() {
				return BoolValue(true), nil
			}
			r, err := eval(ctx, n.r)
			if err != nil {
				return Value{}, err
			}
			return BoolValue(r.Truthy()), nil
		}
		r, err := eval(ctx, n.r)
		if err != nil {
			return Value{}, err
		}
		switch n.op {
		case tEq:
			return BoolValue(l.Equal(r)), nil
		case tNe:
			return BoolValue(!l.Equal(r)), nil
		}
		c, ok, msg := order(l, r)
		if msg != "" {
			return Value{}, errorf(n.pos, "cannot compare %s and %s with '%s': %s", l.Kind(), r.Kind(), tokText[n.op], msg)
		}
		if !ok {
			return BoolValue(false), nil
		}
		switch n.op {
		case tLt:
			return BoolValue(c < 0), nil
		case tLe:
			return BoolValue(c <= 0), nil
		case tGt:
			return BoolValue(c > 0), nil
		}
		return BoolValue(c >= 0), nil
	}
	panic(fmt.Sprintf("expr: unknown node %T", n))
}
