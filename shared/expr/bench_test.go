package expr_test

import (
	"testing"

	"github.com/baton-ci/baton/shared/expr"
)

const benchCond = "success() && steps.build.outputs.version == '1.2.3'"

type benchContext struct{}

func (benchContext) Lookup(path []string) (expr.Value, error) { return expr.StringValue("1.2.3"), nil }
func (benchContext) Status() expr.Status                      { return expr.Status{} }

func BenchmarkParseEval(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		e, err := expr.Parse(benchCond)
		if err != nil {
			b.Fatal(err)
		}
		if ok, err := e.Bool(benchContext{}); err != nil || !ok {
			b.Fatalf("Bool = %v, %v", ok, err)
		}
	}
}

func BenchmarkEval(b *testing.B) {
	e, err := expr.Parse(benchCond)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := e.Bool(benchContext{}); err != nil || !ok {
			b.Fatalf("Bool = %v, %v", ok, err)
		}
	}
}
