package expr_test

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/baton-ci/baton/shared/expr"
)

func testValues() map[string]expr.Value {
	return map[string]expr.Value{
		"v|str":                                expr.StringValue("abc"),
		"v|num":                                expr.NumberValue(1.5),
		"v|numstr":                             expr.StringValue("1.5"),
		"v|empty":                              expr.StringValue(""),
		"v|null":                               {},
		"v|t":                                  expr.BoolValue(true),
		"v|f":                                  expr.BoolValue(false),
		"v|zero":                               expr.NumberValue(0),
		"v|nan":                                expr.NumberValue(math.NaN()),
		"v|inf":                                expr.NumberValue(math.Inf(1)),
		"steps|deploy.migrate|outputs|version": expr.StringValue("1.2.3"),
	}
}

func TestValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v      expr.Value
		kind   expr.Kind
		truthy bool
		str    string
	}{
		{expr.Value{}, expr.KindNull, false, ""},
		{expr.BoolValue(true), expr.KindBool, true, "true"},
		{expr.BoolValue(false), expr.KindBool, false, "false"},
		{expr.NumberValue(0), expr.KindNumber, false, "0"},
		{expr.NumberValue(math.Copysign(0, -1)), expr.KindNumber, false, "-0"},
		{expr.NumberValue(math.NaN()), expr.KindNumber, false, "NaN"},
		{expr.NumberValue(1.5), expr.KindNumber, true, "1.5"},
		{expr.NumberValue(-0.25), expr.KindNumber, true, "-0.25"},
		{expr.NumberValue(2), expr.KindNumber, true, "2"},
		{expr.NumberValue(1e21), expr.KindNumber, true, "1000000000000000000000"},
		{expr.NumberValue(1e-7), expr.KindNumber, true, "0.0000001"},
		{expr.StringValue(""), expr.KindString, false, ""},
		{expr.StringValue("0"), expr.KindString, true, "0"},
		{expr.StringValue("false"), expr.KindString, true, "false"},
	}
	for _, tt := range tests {
		if got := tt.v.Kind(); got != tt.kind {
			t.Errorf("%s.Kind() = %s, want %s", show(tt.v), got, tt.kind)
		}
		if got := tt.v.Truthy(); got != tt.truthy {
			t.Errorf("%s.Truthy() = %v, want %v", show(tt.v), got, tt.truthy)
		}
		if got := tt.v.String(); got != tt.str {
			t.Errorf("%s.String() = %q, want %q", show(tt.v), got, tt.str)
		}
	}
	if got := expr.Kinds(); !reflect.DeepEqual(got, []expr.Kind{expr.KindNull, expr.KindBool, expr.KindNumber, expr.KindString}) {
		t.Errorf("Kinds() = %v", got)
	}
}

func TestEval(t *testing.T) {
	t.Parallel()
	T, F := expr.BoolValue(true), expr.BoolValue(false)
	tests := []struct {
		src  string
		want expr.Value
	}{
		// Literals and references.
		{"null", expr.Value{}},
		{"'it''s'", expr.StringValue("it's")},
		{"-1.50", expr.NumberValue(-1.5)},
		{"v.str", expr.StringValue("abc")},
		{"v['num']", expr.NumberValue(1.5)},
		{"steps['deploy.migrate'].outputs.version", expr.StringValue("1.2.3")},

		// Truthiness through !.
		{"!null", T}, {"!false", T}, {"!0", T}, {"!-0", T}, {"!''", T}, {"!v.nan", T}, {"!v.empty", T}, {"!v.zero", T},
		{"!true", F}, {"!1", F}, {"!-0.5", F}, {"!'a'", F}, {"!'0'", F}, {"!'false'", F}, {"!v.inf", F},
		{"!!'x'", T},

		// && and || yield bools.
		{"1 && 'x'", T}, {"'x' && 0", F}, {"0 || ''", F}, {"null || 'a'", T}, {"'a' || x.y", T}, {"v.str && v.num", T},
		{"true || false && false", T}, {"(true || false) && false", F},

		// Equality, same kind.
		{"1 == 1", T}, {"1 == 1.0", T}, {"-0 == 0", T}, {"1 != 2", T},
		{"'a' == 'a'", T}, {"'a' == 'A'", F}, {"'' == ''", T},
		{"true == true", T}, {"true == false", F},
		{"null == null", T}, {"null != null", F}, {"v.null == null", T},
		{"v.nan == v.nan", F}, {"v.nan != v.nan", T},

		// Equality, number and string.
		{"1 == '1'", T}, {"'1.0' == 1", T}, {"1.5 == v.numstr", T}, {"v.num == v.numstr", T},
		{"1 == ' 1 '", T}, {"1000 == '1e3'", T}, {"1 == '+1'", T}, {"0.5 == '.5'", T}, {"1 == '1.'", T},
		{"1 == 'x'", F}, {"1 != 'x'", T}, {"0 == ''", F}, {"0 == ' '", F}, {"1 == '0x1'", F}, {"1 == '1_0'", F},
		{"v.inf == 'Inf'", F}, {"v.nan == 'NaN'", F}, {"1 == '1e'", F}, {"1 == '-'", F}, {"1 == '1 1'", F},

		// Equality, bool and string.
		{"true == 'true'", T}, {"'false' == false", T}, {"true == 'True'", F}, {"true == '1'", F}, {"v.t == 'true'", T},

		// Equality, other mixes.
		{"true == 1", F}, {"false == 0", F}, {"true != 1", T},
		{"null == ''", F}, {"null == 0", F}, {"null == false", F}, {"'' == null", F}, {"null != 0", T},

		// Ordering.
		{"1 < 2", T}, {"2 < 1", F}, {"2 <= 2", T}, {"2 > 2", F}, {"2 >= 2", T}, {"-1 < 0", T},
		{"'a' < 'b'", T}, {"'B' < 'a'", T}, {"'10' < '9'", T}, {"'abc' >= 'abc'", T}, {"'' < 'a'", T},
		{"10 > '9'", T}, {"'9' < 10", T}, {"v.numstr >= 1.5", T}, {"' 2 ' > 1", T},
		{"v.nan < 1", F}, {"v.nan >= 1", F}, {"1 > v.nan", F}, {"v.inf > '1e308'", T}, {"'1e999' == v.inf", T},
		{"v.inf > 999999", T},

		// Functions.
		{"contains('hello', 'ell')", T}, {"contains('Hello', 'hello')", F}, {"contains('abc', '')", T},
		{"contains(12345, 234)", T}, {"contains(null, '')", T}, {"contains(true, 'ru')", T}, {"contains(1.50, '.50')", F},
		{"startsWith('v1.2', 'v')", T}, {"startsWith('v1.2', 'V')", F}, {"startsWith(1.50, '1.5')", T},
		{"endsWith('v1.2', '.2')", T}, {"endsWith('v1.2', '.3')", F}, {"endsWith(v.str, 'c') == true", T},
		{"contains(contains('ab', 'a'), 'ru')", T},

		// ! binds more loosely than a comparison.
		{"!1 == 2", T}, {"(!1) == 2", F}, {"!v.str == 'abc'", F},
	}
	for _, tt := range tests {
		e, err := expr.Parse(tt.src)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.src, err)
			continue
		}
		ctx := &mapContext{vals: testValues()}
		got, err := e.Eval(ctx)
		if err != nil {
			t.Errorf("Eval(%q): %v", tt.src, err)
			continue
		}
		if got.Kind() != tt.want.Kind() || got.String() != tt.want.String() {
			t.Errorf("Eval(%q) = %s, want %s", tt.src, show(got), show(tt.want))
		}
		b, err := e.Bool(ctx)
		if err != nil || b != tt.want.Truthy() {
			t.Errorf("Bool(%q) = %v, %v; want %v", tt.src, b, err, tt.want.Truthy())
		}
	}
}

func TestEvalErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src     string
		want    string
		unknown bool // the error wraps the Lookup error
	}{
		{"1 < 'x'", "column 3: cannot compare number and string with '<': the string is not a number", false},
		{"'x' >= 1", "column 5: cannot compare string and number with '>=': the string is not a number", false},
		{"1 < ''", "column 3: cannot compare number and string with '<': the string is not a number", false},
		{"true < 1", "column 6: cannot compare bool and number with '<': ordering needs two numbers, two strings, or a number and a numeric string", false},
		{"null <= null", "column 6: cannot compare null and null with '<=': ordering needs two numbers, two strings, or a number and a numeric string", false},
		{"'true' > false", "column 8: cannot compare string and bool with '>': ordering needs two numbers, two strings, or a number and a numeric string", false},
		{"v.null > 0", "column 8: cannot compare null and number with '>': ordering needs two numbers, two strings, or a number and a numeric string", false},
		{"x", "column 1: x: unknown reference", true},
		{"v.str == 'abc' && steps['deploy.migrate'].outputs.name", "column 19: steps['deploy.migrate'].outputs.name: unknown reference", true},
		{"contains(v.str, missing['a b'])", "column 17: missing['a b']: unknown reference", true},
		{"!(x.y)", "column 3: x.y: unknown reference", true},
		{"true && (1 < true)", "column 12: cannot compare number and bool with '<': ordering needs two numbers, two strings, or a number and a numeric string", false},
	}
	for _, tt := range tests {
		e, err := expr.Parse(tt.src)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.src, err)
			continue
		}
		_, err = e.Eval(&mapContext{vals: testValues()})
		if err == nil {
			t.Errorf("Eval(%q) succeeded, want %s", tt.src, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("Eval(%q):\n got %s\nwant %s", tt.src, err, tt.want)
		}
		var ee *expr.Error
		if !errors.As(err, &ee) {
			t.Errorf("Eval(%q) error is %T, want *expr.Error", tt.src, err)
		}
		if got := errors.Is(err, errUnknown); got != tt.unknown {
			t.Errorf("Eval(%q): errors.Is(err, errUnknown) = %v, want %v", tt.src, got, tt.unknown)
		}
		if _, err := e.Bool(&mapContext{vals: testValues()}); err == nil {
			t.Errorf("Bool(%q) succeeded", tt.src)
		}
	}
}

func TestShortCircuit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src         string
		status      expr.Status
		want        bool
		lookups     []string
		statusCalls int
	}{
		{"false && x.y", expr.Status{}, false, nil, 0},
		{"true || x.y", expr.Status{}, true, nil, 0},
		{"0 && x.y || v.t", expr.Status{}, true, []string{"v|t"}, 0},
		{"v.f && x.y", expr.Status{}, false, []string{"v|f"}, 0},
		{"v.t || x.y", expr.Status{}, true, []string{"v|t"}, 0},
		{"success() && x.y", expr.Status{DependencyFailed: true}, false, nil, 1},
		{"failure() || v.str == 'abc'", expr.Status{DependencyFailed: true}, true, nil, 1},
		{"v.str == 'abc' || failure()", expr.Status{}, true, []string{"v|str"}, 0},
		{"v.str == 'abc' && v.num > 1", expr.Status{}, true, []string{"v|str", "v|num"}, 0},
	}
	for _, tt := range tests {
		e, err := expr.Parse(tt.src)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.src, err)
		}
		ctx := &mapContext{vals: testValues(), status: tt.status}
		got, err := e.Bool(ctx)
		if err != nil {
			t.Errorf("Bool(%q): %v", tt.src, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Bool(%q) = %v, want %v", tt.src, got, tt.want)
		}
		if !slices.Equal(ctx.lookups, tt.lookups) {
			t.Errorf("Bool(%q) looked up %q, want %q", tt.src, ctx.lookups, tt.lookups)
		}
		if ctx.statusCalls != tt.statusCalls {
			t.Errorf("Bool(%q) called Status %d times, want %d", tt.src, ctx.statusCalls, tt.statusCalls)
		}
	}
}

func TestStatusFunctions(t *testing.T) {
	t.Parallel()
	statuses := []struct {
		name string
		s    expr.Status
		// success, failure, always, cancelled
		want [4]bool
	}{
		{"all passed", expr.Status{}, [4]bool{true, false, true, false}},
		{"dependency failed", expr.Status{DependencyFailed: true}, [4]bool{false, true, true, false}},
		{"dependency skipped by its condition", expr.Status{DependencyNotSucceeded: true}, [4]bool{false, false, true, false}},
		{"cancelled", expr.Status{Cancelled: true}, [4]bool{false, false, true, true}},
		{"failed and cancelled", expr.Status{DependencyFailed: true, Cancelled: true}, [4]bool{false, false, true, true}},
	}
	funcs := []string{"success()", "failure()", "always()", "cancelled()"}
	for _, st := range statuses {
		for i, f := range funcs {
			e, err := expr.Parse(f)
			if err != nil {
				t.Fatal(err)
			}
			v, err := e.Eval(anyContext{status: st.s})
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if v.Kind() != expr.KindBool || v.Truthy() != st.want[i] {
				t.Errorf("%s when %s = %s, want %v", f, st.name, show(v), st.want[i])
			}
		}
	}
}

func TestImplicitSuccessEval(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cond   string
		status expr.Status
		want   bool
	}{
		{"v.str == 'abc'", expr.Status{}, true},
		{"v.str == 'abc'", expr.Status{DependencyFailed: true}, false},
		{"v.str == 'abc'", expr.Status{Cancelled: true}, false},
		{"${{ v.str == 'abc' || true }}", expr.Status{DependencyFailed: true}, false},
		{"failure() && v.str == 'abc'", expr.Status{DependencyFailed: true}, true},
		{"always()", expr.Status{DependencyFailed: true, Cancelled: true}, true},
		{"cancelled()", expr.Status{Cancelled: true}, true},
		{"!cancelled()", expr.Status{DependencyFailed: true}, true},
	}
	for _, tt := range tests {
		e, err := expr.ParseCondition(tt.cond)
		if err != nil {
			t.Fatalf("ParseCondition(%q): %v", tt.cond, err)
		}
		got, err := e.ImplicitSuccess().Bool(&mapContext{vals: testValues(), status: tt.status})
		if err != nil || got != tt.want {
			t.Errorf("%q under %+v = %v, %v; want %v", tt.cond, tt.status, got, err, tt.want)
		}
	}
}

func TestLookupPath(t *testing.T) {
	t.Parallel()
	e, err := expr.Parse("steps['deploy.migrate'].outputs['version'] == '1.2.3'")
	if err != nil {
		t.Fatal(err)
	}
	ctx := &mapContext{vals: testValues()}
	if ok, err := e.Bool(ctx); err != nil || !ok {
		t.Fatalf("Bool = %v, %v", ok, err)
	}
	if want := []string{"steps|deploy.migrate|outputs|version"}; !slices.Equal(ctx.lookups, want) {
		t.Errorf("looked up %q, want %q", ctx.lookups, want)
	}
}

func TestEvalNilContext(t *testing.T) {
	t.Parallel()
	e, err := expr.Parse("contains('abc', 'b') && 1 < 2 && success()")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := e.Bool(nil); err != nil || !ok {
		t.Errorf("Bool(nil) = %v, %v; want true", ok, err)
	}
	e, err = expr.Parse("a.b")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Eval(nil)
	if want := "column 1: a.b: no context to look it up in"; err == nil || err.Error() != want {
		t.Errorf("Eval(nil) = %v, want %s", err, want)
	}
}

// TestConcurrentEval runs one parsed expression from many goroutines; with
// -race it checks that evaluation does not write to the Expr.
func TestConcurrentEval(t *testing.T) {
	t.Parallel()
	e, err := expr.Parse("success() && steps['deploy.migrate'].outputs.version == '1.2.3' && contains(v.str, 'b')")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan bool)
	for range 8 {
		go func() {
			ok, err := e.Bool(&mapContext{vals: testValues()})
			done <- err == nil && ok
		}()
	}
	for range 8 {
		if !<-done {
			t.Error("concurrent Bool failed")
		}
	}
}
