package expr_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/baton-ci/baton/shared/expr"
)

// outputs is a Context over step outputs.
type outputs struct {
	values map[string]string // "step/output" → value
	status expr.Status
}

func (o outputs) Lookup(path []string) (expr.Value, error) {
	if len(path) == 4 && path[0] == "steps" && path[2] == "outputs" {
		if v, ok := o.values[path[1]+"/"+path[3]]; ok {
			return expr.StringValue(v), nil
		}
	}
	return expr.Value{}, fmt.Errorf("no such output")
}

func (o outputs) Status() expr.Status { return o.status }

func ExampleParseCondition() {
	cond, err := expr.ParseCondition("${{ steps['deploy.migrate'].outputs.version >= 2 }}")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cond.Refs(), cond.UsesStatus())
	fmt.Println(cond.ImplicitSuccess())

	ctx := outputs{values: map[string]string{"deploy.migrate/version": "3"}}
	run, err := cond.ImplicitSuccess().Bool(ctx)
	fmt.Println(run, err)

	ctx.status.DependencyFailed = true
	run, err = cond.ImplicitSuccess().Bool(ctx)
	fmt.Println(run, err)
	// Output:
	// [[steps deploy.migrate outputs version]] false
	// success() && steps['deploy.migrate'].outputs.version >= 2
	// true <nil>
	// false <nil>
}

func ExampleParseTemplate() {
	tmpl, err := expr.ParseTemplate("myapp:${{ steps.build.outputs.tag }}")
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := tmpl.Render(outputs{values: map[string]string{"build/tag": "1.4.0"}})
	fmt.Println(s, err)

	_, err = tmpl.Render(outputs{})
	fmt.Println(err)
	// Output:
	// myapp:1.4.0 <nil>
	// column 11: steps.build.outputs.tag: no such output
}

func ExampleError() {
	src := "steps.build.outputs.version = '1.2.3'"
	_, err := expr.Parse(src)
	fmt.Println(err)
	var pe *expr.Error
	if errors.As(err, &pe) {
		fmt.Println(src)
		fmt.Println(strings.Repeat(" ", pe.Offset) + "^")
	}
	// Output:
	// column 29: unexpected '='; expected '==' to compare
	// steps.build.outputs.version = '1.2.3'
	//                             ^
}
