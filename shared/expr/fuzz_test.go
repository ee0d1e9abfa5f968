package expr_test

import (
	"errors"
	"testing"

	"github.com/baton-ci/baton/shared/expr"
)

var fuzzSeeds = []string{
	"",
	"a",
	"success() && steps.build.outputs.version == '1.2.3'",
	"steps['deploy.migrate'].outputs.version",
	"a['it''s'].b-c._d",
	"!(a == b) || (c != 'd' && e < 1.5)",
	"!a == b",
	"(a == b) == c",
	"a == b == c",
	"a || (b || c) && d",
	"contains(contains(a, 'b'), startsWith(c, endsWith(d, e)))",
	"failure() || cancelled() || always()",
	"-0.50 >= '1e3'",
	"007 <= null",
	"true != false",
	"a.true.null",
	"((((((((((a))))))))))",
	"!!!!!!!!!!a",
	"contains(a,)",
	"'unterminated",
	"1.2.3",
	"a.b()",
	"Success()",
	"a = b",
	"a == ${{ b }}",
	"é \xff",
	"${{ a }}",
	"x ${{ a }} y ${{ 'b}}' }} z",
	"$${{ a }}",
	"${{ '${{' }}",
	"${{ a",
	"${{ }}",
	"}} {{",
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := expr.Parse(src)
		if err != nil {
			checkError(t, src, err)
			return
		}
		canonical := e.String()
		again, err := expr.Parse(canonical)
		if err != nil {
			if len(canonical) > expr.MaxSourceLen {
				return // spaces around operators can make it longer than the limit
			}
			t.Fatalf("Parse(%q).String() = %q does not parse: %v", src, canonical, err)
		}
		if got := again.String(); got != canonical {
			t.Fatalf("Parse(%q).String() = %q, but that parses to %q", src, canonical, got)
		}
		if cond := "${{ " + src + " }}"; len(cond) <= expr.MaxSourceLen {
			wrapped, err := expr.ParseCondition(cond)
			if err != nil {
				t.Fatalf("ParseCondition(%q): %v", cond, err)
			}
			if got := wrapped.String(); got != canonical {
				t.Fatalf("ParseCondition(%q).String() = %q, want %q", cond, got, canonical)
			}
		}
		for _, st := range []expr.Status{{}, {DependencyFailed: true}, {Cancelled: true}} {
			if _, err := e.ImplicitSuccess().Eval(anyContext{status: st}); err != nil {
				checkError(t, src, err)
			}
		}
		_ = e.Refs()
	})
}

func FuzzTemplate(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tmpl, err := expr.ParseTemplate(src)
		if err != nil {
			checkError(t, src, err)
			return
		}
		out, err := tmpl.Render(anyContext{status: expr.Status{DependencyFailed: len(src)%2 == 1}})
		if err != nil {
			checkError(t, src, err)
		}
		if tmpl.IsLiteral() && (err != nil || out != src) {
			t.Fatalf("literal template %q renders as %q, %v", src, out, err)
		}
		_ = tmpl.Refs()
		canonical := tmpl.String()
		if len(canonical) > expr.MaxSourceLen {
			return
		}
		again, err := expr.ParseTemplate(canonical)
		if err != nil {
			t.Fatalf("ParseTemplate(%q).String() = %q does not parse: %v", src, canonical, err)
		}
		if got := again.String(); got != canonical {
			t.Fatalf("ParseTemplate(%q).String() = %q, but that parses to %q", src, canonical, got)
		}
	})
}

// checkError fails unless err is an *expr.Error that points into src.
func checkError(t *testing.T, src string, err error) {
	t.Helper()
	var pe *expr.Error
	if !errors.As(err, &pe) {
		t.Fatalf("%q: error %v is %T, want *expr.Error", src, err, err)
	}
	if pe.Offset < 0 || pe.Offset > len(src) || pe.Msg == "" {
		t.Fatalf("%q: error %q has offset %d outside the source (length %d)", src, err, pe.Offset, len(src))
	}
}
