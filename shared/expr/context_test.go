package expr_test

import (
	"errors"
	"strings"
	"sync"

	"github.com/baton-ci/baton/shared/expr"
)

var errUnknown = errors.New("unknown reference")

// mapContext is a Context over a map keyed by the path joined with "|"; it
// records every lookup and status call.
type mapContext struct {
	vals   map[string]expr.Value
	status expr.Status

	mu          sync.Mutex
	lookups     []string
	statusCalls int
}

func (c *mapContext) Lookup(path []string) (expr.Value, error) {
	key := strings.Join(path, "|")
	c.mu.Lock()
	c.lookups = append(c.lookups, key)
	c.mu.Unlock()
	v, ok := c.vals[key]
	if !ok {
		return expr.Value{}, errUnknown
	}
	return v, nil
}

func (c *mapContext) Status() expr.Status {
	c.mu.Lock()
	c.statusCalls++
	c.mu.Unlock()
	return c.status
}

// show prints a value with its kind, so that null and "" differ.
func show(v expr.Value) string { return string(v.Kind()) + "(" + v.String() + ")" }

// anyContext has a value for every path: the path joined with ".".
type anyContext struct{ status expr.Status }

func (anyContext) Lookup(path []string) (expr.Value, error) {
	return expr.StringValue(strings.Join(path, ".")), nil
}

func (c anyContext) Status() expr.Status { return c.status }
