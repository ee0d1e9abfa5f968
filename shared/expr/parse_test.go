package expr_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/expr"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		want string // canonical String()
	}{
		{"a", "a"},
		{"  a\t", "a"},
		{"a.b.c", "a.b.c"},
		{"a . b", "a.b"},
		{"steps['deploy.migrate'].outputs.version", "steps['deploy.migrate'].outputs.version"},
		{"a['b']", "a.b"},
		{"a[ 'b c' ]['d']", "a['b c'].d"},
		{"a['it''s']", "a['it''s']"},
		{"a['']", "a['']"},
		{"a.true.null", "a.true.null"},
		{"a-b.c_d-1", "a-b.c_d-1"},
		{"_x", "_x"},
		{"success", "success"},
		{"'it''s'", "'it''s'"},
		{"''", "''"},
		{"'a\nb'", "'a\nb'"},
		{"1.50", "1.5"},
		{"-0.250", "-0.25"},
		{"007", "7"},
		{"-0", "-0"},
		{"12345678901234567890", "12345678901234567000"},
		{"true", "true"},
		{"false", "false"},
		{"null", "null"},
		{"a==b", "a == b"},
		{"a!=1", "a != 1"},
		{"a<1", "a < 1"},
		{"a<=1", "a <= 1"},
		{"a>-1", "a > -1"},
		{"a>=1", "a >= 1"},
		{"a||b&&c", "a || b && c"},
		{"a&&b||c", "a && b || c"},
		{"(a||b)&&c", "(a || b) && c"},
		{"a || (b || c)", "a || (b || c)"},
		{"(a || b) || c", "a || b || c"},
		{"a && (b && c)", "a && (b && c)"},
		{"!a == b", "!a == b"},
		{"(!a) == b", "(!a) == b"},
		{"!(a == b)", "!a == b"},
		{"!(a && b)", "!(a && b)"},
		{"!!a", "!!a"},
		{"!a && !b", "!a && !b"},
		{"(a == b) == c", "(a == b) == c"},
		{"a == (b == c)", "a == (b == c)"},
		{"((((a))))", "a"},
		{"a\n&&\r\nb", "a && b"},
		{"success()", "success()"},
		{"success ( )", "success()"},
		{"always() || failure() || cancelled()", "always() || failure() || cancelled()"},
		{"contains( a , 'x' )", "contains(a, 'x')"},
		{"startsWith(a.b,'v')&&endsWith(a.b,'.0')", "startsWith(a.b, 'v') && endsWith(a.b, '.0')"},
		{"contains(contains(a, b), a || b)", "contains(contains(a, b), a || b)"},
		{"contains(a, '}}')", "contains(a, '}}')"},
	}
	for _, tt := range tests {
		e, err := expr.Parse(tt.src)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.src, err)
			continue
		}
		if got := e.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.src, got, tt.want)
		}
		again, err := expr.Parse(e.String())
		if err != nil || again.String() != tt.want {
			t.Errorf("Parse(%q) does not round-trip: %v", tt.src, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		want string
	}{
		{"", "column 1: unexpected end of expression; expected an expression"},
		{"   ", "column 4: unexpected end of expression; expected an expression"},
		{"a ==", "column 5: unexpected end of expression; expected a value after '=='"},
		{"a b", "column 3: unexpected 'b'; expected an operator or end of expression"},
		{"a 'b'", "column 3: unexpected string 'b'; expected an operator or end of expression"},
		{"a 12", "column 3: unexpected number 12; expected an operator or end of expression"},
		{"(a", "column 3: unexpected end of expression; expected an operator or ')' to close the '(' at column 1"},
		{"(a b)", "column 4: unexpected 'b'; expected an operator or ')' to close the '(' at column 1"},
		{"a)", "column 2: unexpected ')'; expected an operator or end of expression"},
		{"()", "column 2: unexpected ')'; expected an expression after '('"},
		{"a == b == c", "column 8: unexpected '=='; comparisons cannot be chained (use '&&', or parentheses around one comparison)"},
		{"a < b >= c", "column 7: unexpected '>='; comparisons cannot be chained (use '&&', or parentheses around one comparison)"},
		{"a == !b", "column 6: unexpected '!'; expected a value after '==' (put a negation in parentheses: (!x))"},
		{"a && ", "column 6: unexpected end of expression; expected an expression after '&&'"},
		{"a || )", "column 6: unexpected ')'; expected an expression after '||'"},
		{"|| a", "column 1: unexpected '||'; expected an expression"},
		{"!", "column 2: unexpected end of expression; expected an expression after '!'"},
		{"a = b", "column 3: unexpected '='; expected '==' to compare"},
		{"a & b", "column 3: unexpected '&'; expected '&&'"},
		{"a | b", "column 3: unexpected '|'; expected '||'"},
		{"'abc", "column 1: unterminated string; expected a closing quote (')"},
		{"a == 'it''s", "column 6: unterminated string; expected a closing quote (')"},
		{"1.", "column 1: invalid number '1.'; expected a digit after the decimal point"},
		{"1.2.3", "column 1: invalid number '1.2.3'; expected digits with at most one decimal point"},
		{"a == 1abc", "column 6: invalid number '1abc'; expected digits with at most one decimal point"},
		{"1e5", "column 1: invalid number '1e5'; expected digits with at most one decimal point"},
		{"-a", "column 1: unexpected '-'; expected a number after '-' (there is no subtraction)"},
		{"a - 1", "column 3: unexpected '-'; expected a number after '-' (there is no subtraction)"},
		{".5", "column 1: unexpected '.'; expected an expression"},
		{strings.Repeat("9", 400), "column 1: number '999999999999999999999999...' is out of range"},
		{"a.", "column 3: unexpected end of expression; expected a property name after '.'"},
		{"a..b", "column 3: unexpected '.'; expected a property name after '.'"},
		{"a.1", "column 3: unexpected number 1; expected a property name after '.'"},
		{"a[0]", "column 3: unexpected number 0; expected a quoted property name after '[', like ['name']"},
		{"a[b]", "column 3: unexpected 'b'; expected a quoted property name after '[', like ['name']"},
		{"a['b'", "column 6: unexpected end of expression; expected ']' to close the '[' at column 2"},
		{"a['b'.c]", "column 6: unexpected '.'; expected ']' to close the '[' at column 2"},
		{"a.b()", "column 4: unexpected '('; expected an operator or end of expression (only the built-in functions can be called)"},
		{"true.x", "column 5: unexpected '.'; expected an operator or end of expression"},
		{"null", ""},
		{"foo()", "column 1: unknown function 'foo'; expected one of always, cancelled, contains, endsWith, failure, startsWith, success"},
		{"a && Success()", "column 6: unknown function 'Success'; did you mean success?"},
		{"startswith(a, 'b')", "column 1: unknown function 'startswith'; did you mean startsWith?"},
		{"contains(a)", "column 1: contains(haystack, needle) takes 2 arguments, got 1"},
		{"x || endsWith(a, b, c)", "column 6: endsWith(s, suffix) takes 2 arguments, got 3"},
		{"success(1)", "column 1: success() takes no arguments, got 1"},
		{"contains(a,)", "column 12: unexpected ')'; expected an argument after ','"},
		{"contains(a b)", "column 12: unexpected 'b'; expected an operator, ',' or ')' to close the '(' at column 9"},
		{"contains(", "column 10: unexpected end of expression; expected an argument or ')'"},
		{"contains(,)", "column 10: unexpected ','; expected an argument or ')'"},
		{"a # b", "column 3: unexpected character '#'; expected an expression"},
		{"a == é", "column 6: unexpected character 'é'; expected an expression"},
		{"a == \xff", "column 6: unexpected byte 0xff; expected an expression"},
		{"a $ b", "column 3: unexpected character '$'; expected an expression"},
		{"a == ${{ b }}", "column 6: unexpected '${{'; an expression cannot contain '${{' (write the string '${{' if you mean the text)"},
		{"a }}", "column 3: unexpected character '}'; expected an expression"},
	}
	for _, tt := range tests {
		_, err := expr.Parse(tt.src)
		if tt.want == "" {
			if err != nil {
				t.Errorf("Parse(%q): %v", tt.src, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want %q", tt.src, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("Parse(%q):\n got %s\nwant %s", tt.src, err, tt.want)
		}
		var pe *expr.Error
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) error is %T, want *expr.Error", tt.src, err)
		} else if pe.Offset < 0 || pe.Offset > len(tt.src) {
			t.Errorf("Parse(%q) error offset %d is outside the source", tt.src, pe.Offset)
		}
	}
}

func TestParseCondition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src     string
		want    string // canonical String(), or the error
		wantErr bool
	}{
		{src: "a == 'x'", want: "a == 'x'"},
		{src: "${{ a == 'x' }}", want: "a == 'x'"},
		{src: "  ${{a}}\n", want: "a"},
		{src: "${{ contains(a, '}}') }}", want: "contains(a, '}}')"},
		{src: "${{ failure() }}", want: "failure()"},
		{src: "${{ a }} && b", wantErr: true, want: "column 10: unexpected text after '}}'; expected the end of the condition (a condition is a bare expression or a single ${{ }})"},
		{src: "${{ a }}${{ b }}", wantErr: true, want: "column 9: unexpected text after '}}'; expected the end of the condition (a condition is a bare expression or a single ${{ }})"},
		{src: "${{ a", wantErr: true, want: "column 1: unterminated '${{'; expected '}}' to close it"},
		{src: "${{ 'a }}", wantErr: true, want: "column 5: unterminated string; expected a closing quote (')"},
		{src: "${{ }}", wantErr: true, want: "column 5: unexpected '}}'; expected an expression"},
		{src: "${{ a b }}", wantErr: true, want: "column 7: unexpected 'b'; expected an operator or '}}'"},
		{src: "${{ (a }}", wantErr: true, want: "column 8: unexpected '}}'; expected an operator or ')' to close the '(' at column 5"},
		{src: "a && ${{ b }}", wantErr: true, want: "column 6: unexpected '${{'; an expression cannot contain '${{' (write the string '${{' if you mean the text)"},
		{src: strings.Repeat(" ", expr.MaxSourceLen) + "a", wantErr: true, want: "column 1: condition is 4097 bytes; the limit is 4096"},
	}
	for _, tt := range tests {
		e, err := expr.ParseCondition(tt.src)
		switch {
		case tt.wantErr && err == nil:
			t.Errorf("ParseCondition(%q) succeeded, want %s", tt.src, tt.want)
		case tt.wantErr && err.Error() != tt.want:
			t.Errorf("ParseCondition(%q):\n got %s\nwant %s", tt.src, err, tt.want)
		case !tt.wantErr && err != nil:
			t.Errorf("ParseCondition(%q): %v", tt.src, err)
		case !tt.wantErr && e.String() != tt.want:
			t.Errorf("ParseCondition(%q).String() = %q, want %q", tt.src, e.String(), tt.want)
		}
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	nest := func(open, inner, close string, n int) string {
		return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
	}
	deep := "column 33: expression nests more than 32 levels deep"
	tests := []struct {
		name string
		src  string
		want string // "" for success
	}{
		{"32 parentheses", nest("(", "a", ")", expr.MaxDepth), ""},
		{"33 parentheses", nest("(", "a", ")", expr.MaxDepth+1), deep},
		{"4000 parentheses", nest("(", "a", ")", 2000), deep},
		{"32 negations", nest("!", "a", "", expr.MaxDepth), ""},
		{"33 negations", nest("!", "a", "", expr.MaxDepth+1), deep},
		{"4096 negations", nest("!", "", "", expr.MaxSourceLen), deep},
		{"mixed nesting", nest("!(", "a", ")", 17), "column 33: expression nests more than 32 levels deep"},
		{"32 calls", nest("contains(", "a", ", b)", expr.MaxDepth), ""},
		{"33 calls", nest("contains(", "a", ", b)", expr.MaxDepth+1), "column 289: expression nests more than 32 levels deep"},
		{"long chain is not nesting", "a" + strings.Repeat(" || a", (expr.MaxSourceLen-1)/5), ""},
		{"4096 bytes", strings.Repeat("a", expr.MaxSourceLen), ""},
		{"4097 bytes", strings.Repeat("a", expr.MaxSourceLen+1), "column 1: expression is 4097 bytes; the limit is 4096"},
	}
	for _, tt := range tests {
		e, err := expr.Parse(tt.src)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && err == nil:
			t.Errorf("%s: succeeded, want %s", tt.name, tt.want)
		case tt.want != "" && err.Error() != tt.want:
			t.Errorf("%s:\n got %s\nwant %s", tt.name, err, tt.want)
		case tt.want == "":
			if _, err := e.Eval(anyContext{}); err != nil {
				t.Errorf("%s: Eval: %v", tt.name, err)
			}
			if again, err := expr.Parse(e.String()); err != nil || again.String() != e.String() {
				t.Errorf("%s: String() does not parse back: %v", tt.name, err)
			}
		}
	}
}

func TestRefsAndStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src        string
		refs       [][]string
		usesStatus bool
		implicit   string
	}{
		{"true", nil, false, "success() && true"},
		{"a", [][]string{{"a"}}, false, "success() && a"},
		{"a || b", [][]string{{"a"}, {"b"}}, false, "success() && (a || b)"},
		{"!a", [][]string{{"a"}}, false, "success() && !a"},
		{
			"steps['deploy.migrate'].outputs.version == '1' && contains(env.A, steps['deploy.migrate'].outputs.version)",
			[][]string{{"steps", "deploy.migrate", "outputs", "version"}, {"env", "A"}}, false,
			"success() && (steps['deploy.migrate'].outputs.version == '1' && contains(env.A, steps['deploy.migrate'].outputs.version))",
		},
		{"a.b == a['b'] || a.b.c", [][]string{{"a", "b"}, {"a", "b", "c"}}, false, "success() && (a.b == a.b || a.b.c)"},
		{"success()", nil, true, "success()"},
		{"failure() || a", [][]string{{"a"}}, true, "failure() || a"},
		{"!cancelled()", nil, true, "!cancelled()"},
		{"contains(a, 'x') && (b || always())", [][]string{{"a"}, {"b"}}, true, "contains(a, 'x') && (b || always())"},
		{"success", [][]string{{"success"}}, false, "success() && success"},
	}
	for _, tt := range tests {
		e, err := expr.Parse(tt.src)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.src, err)
		}
		if got := e.Refs(); !reflect.DeepEqual(got, tt.refs) {
			t.Errorf("Parse(%q).Refs() = %q, want %q", tt.src, got, tt.refs)
		}
		if got := e.UsesStatus(); got != tt.usesStatus {
			t.Errorf("Parse(%q).UsesStatus() = %v, want %v", tt.src, got, tt.usesStatus)
		}
		if got := e.ImplicitSuccess().String(); got != tt.implicit {
			t.Errorf("Parse(%q).ImplicitSuccess() = %q, want %q", tt.src, got, tt.implicit)
		}
		if e.String() != func() string { e2, _ := expr.Parse(tt.src); return e2.String() }() {
			t.Errorf("ImplicitSuccess changed %q", tt.src)
		}
	}
}

func TestRefsAreCopies(t *testing.T) {
	t.Parallel()
	e, err := expr.Parse("a.b")
	if err != nil {
		t.Fatal(err)
	}
	e.Refs()[0][1] = "changed"
	if got := e.Refs(); !reflect.DeepEqual(got, [][]string{{"a", "b"}}) {
		t.Errorf("Refs() after changing an earlier result = %q", got)
	}
	if got := e.String(); got != "a.b" {
		t.Errorf("String() after changing Refs() = %q", got)
	}
}
