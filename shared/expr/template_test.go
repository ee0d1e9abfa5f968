package expr_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/expr"
)

func TestTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src       string
		literal   bool
		want      string     // rendered
		canonical string     // String()
		refs      [][]string // Refs()
	}{
		{"", true, "", "", nil},
		{"plain text", true, "plain text", "plain text", nil},
		{"}} {{ $ ${ { '", true, "}} {{ $ ${ { '", "}} {{ $ ${ { '", nil},
		{"${{ v.str }}", false, "abc", "${{ v.str }}", [][]string{{"v", "str"}}},
		{"v${{v.num}}", false, "v1.5", "v${{ v.num }}", [][]string{{"v", "num"}}},
		{"${{ v.str }}-${{v.num}}!", false, "abc-1.5!", "${{ v.str }}-${{ v.num }}!", [][]string{{"v", "str"}, {"v", "num"}}},
		{"${{a.b}}${{ a['b'] }}", false, "xx", "${{ a.b }}${{ a.b }}", [][]string{{"a", "b"}}},
		{"$${{ v.str }}", false, "$abc", "$${{ v.str }}", [][]string{{"v", "str"}}},
		{"${${{ v.str }}", false, "${abc", "${${{ v.str }}", [][]string{{"v", "str"}}},
		{"${{ v.str }}}}", false, "abc}}", "${{ v.str }}}}", [][]string{{"v", "str"}}},
		{"${{ 'it''s' }}", false, "it's", "${{ 'it''s' }}", nil},
		{"${{ '${{' }} v.str }}", false, "${{ v.str }}", "${{ '${{' }} v.str }}", nil},
		{"${{ contains(v.str, '}}') }}", false, "false", "${{ contains(v.str, '}}') }}", [][]string{{"v", "str"}}},
		{"n=${{ 1.50 }} z=${{ null }} b=${{ v.t }} e=${{ v.empty }}", false, "n=1.5 z= b=true e=", "n=${{ 1.5 }} z=${{ null }} b=${{ v.t }} e=${{ v.empty }}", [][]string{{"v", "t"}, {"v", "empty"}}},
		{"${{ v.num == v.numstr && success() }}", false, "true", "${{ v.num == v.numstr && success() }}", [][]string{{"v", "num"}, {"v", "numstr"}}},
		{"version ${{ steps['deploy.migrate'].outputs.version }}\n", false, "version 1.2.3\n", "version ${{ steps['deploy.migrate'].outputs.version }}\n", [][]string{{"steps", "deploy.migrate", "outputs", "version"}}},
	}
	for _, tt := range tests {
		tmpl, err := expr.ParseTemplate(tt.src)
		if err != nil {
			t.Errorf("ParseTemplate(%q): %v", tt.src, err)
			continue
		}
		if got := tmpl.IsLiteral(); got != tt.literal {
			t.Errorf("ParseTemplate(%q).IsLiteral() = %v, want %v", tt.src, got, tt.literal)
		}
		vals := testValues()
		vals["a|b"] = expr.StringValue("x")
		got, err := tmpl.Render(&mapContext{vals: vals})
		if err != nil {
			t.Errorf("Render(%q): %v", tt.src, err)
		} else if got != tt.want {
			t.Errorf("Render(%q) = %q, want %q", tt.src, got, tt.want)
		}
		if got := tmpl.String(); got != tt.canonical {
			t.Errorf("ParseTemplate(%q).String() = %q, want %q", tt.src, got, tt.canonical)
		}
		if got := tmpl.Refs(); !reflect.DeepEqual(got, tt.refs) {
			t.Errorf("ParseTemplate(%q).Refs() = %q, want %q", tt.src, got, tt.refs)
		}
		if tt.literal {
			if got, err := tmpl.Render(nil); err != nil || got != tt.src {
				t.Errorf("Render(nil) of literal %q = %q, %v", tt.src, got, err)
			}
		}
	}
}

func TestTemplateErrors(t *testing.T) {
	t.Parallel()
	many := strings.Repeat("${{ a }} ", expr.MaxTemplateParts)
	tests := []struct {
		src  string
		want string
	}{
		{"a ${{ b", "column 3: unterminated '${{'; expected '}}' to close it"},
		{"${{", "column 1: unterminated '${{'; expected '}}' to close it"},
		{"${{ a }} ${{ b }", "column 10: unterminated '${{'; expected '}}' to close it"},
		{"${{ 'b }}", "column 5: unterminated string; expected a closing quote (')"},
		{"${{ it's }}", "column 7: unterminated string; expected a closing quote (')"},
		{"x ${{ }}", "column 7: unexpected '}}'; expected an expression"},
		{"x ${{}}", "column 6: unexpected '}}'; expected an expression"},
		{"${{ a b }}", "column 7: unexpected 'b'; expected an operator or '}}'"},
		{"${{ a == }}", "column 10: unexpected '}}'; expected a value after '=='"},
		{"${{ (a }}", "column 8: unexpected '}}'; expected an operator or ')' to close the '(' at column 5"},
		{"${{ a ${{ b }} }}", "column 7: unexpected '${{'; an expression cannot contain '${{' (write the string '${{' if you mean the text)"},
		{"${{ a } }}", "column 7: unexpected character '}'; expected an expression"},
		{many + "${{ a }}", "column 901: template has more than 100 '${{ }}' parts"},
		{"x${{ " + strings.Repeat("a", expr.MaxSourceLen) + " }}", "column 2: expression is 4098 bytes; the limit is 4096"},
	}
	for _, tt := range tests {
		_, err := expr.ParseTemplate(tt.src)
		if err == nil {
			t.Errorf("ParseTemplate(%q) succeeded, want %s", tt.src, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("ParseTemplate(%.40q):\n got %s\nwant %s", tt.src, err, tt.want)
		}
		var pe *expr.Error
		if !errors.As(err, &pe) || pe.Offset < 0 || pe.Offset > len(tt.src) {
			t.Errorf("ParseTemplate(%.40q) error %#v is not an *expr.Error inside the source", tt.src, err)
		}
	}
	if _, err := expr.ParseTemplate(many); err != nil {
		t.Errorf("template with %d parts: %v", expr.MaxTemplateParts, err)
	}
	if _, err := expr.ParseTemplate("x${{ " + strings.Repeat("a", expr.MaxSourceLen-2) + " }}"); err != nil {
		t.Errorf("template with a %d-byte expression: %v", expr.MaxSourceLen, err)
	}
}

func TestTemplateRenderErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		want string
	}{
		{"x=${{ missing }}", "column 7: missing: unknown reference"},
		{"${{ v.str }} and ${{ v.str < 1 }}", "column 28: cannot compare string and number with '<': the string is not a number"},
	}
	for _, tt := range tests {
		tmpl, err := expr.ParseTemplate(tt.src)
		if err != nil {
			t.Fatalf("ParseTemplate(%q): %v", tt.src, err)
		}
		got, err := tmpl.Render(&mapContext{vals: testValues()})
		if err == nil || err.Error() != tt.want {
			t.Errorf("Render(%q) = %q, %v; want error %s", tt.src, got, err, tt.want)
		}
	}
}
