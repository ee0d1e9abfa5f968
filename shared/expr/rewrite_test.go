package expr_test

import (
	"testing"

	"github.com/baton-ci/baton/shared/expr"
)

func TestRewriteRefs(t *testing.T) {
	t.Parallel()
	prefix := func(path []string) []string {
		if len(path) > 1 && path[0] == "steps" {
			path[1] = "deploy." + path[1]
		}
		return path
	}
	tmpl, err := expr.ParseTemplate(`echo ${{ steps.build.outputs.v }} ${{params.x}} and ${{ contains(steps['a'].state, 'ok') && !failure() }}`)
	if err != nil {
		t.Fatal(err)
	}
	got := tmpl.RewriteRefs(prefix)
	want := `echo ${{ steps['deploy.build'].outputs.v }} ${{ params.x }} and ${{ contains(steps['deploy.a'].state, 'ok') && !failure() }}`
	if got != want {
		t.Errorf("template rewrite\n got %s\nwant %s", got, want)
	}
	if _, err := expr.ParseTemplate(got); err != nil {
		t.Errorf("rewritten template does not parse: %v", err)
	}
	e, err := expr.ParseCondition("${{ steps.x.state == 'succeeded' || failure() }}")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.RewriteRefs(prefix); got != "steps['deploy.x'].state == 'succeeded' || failure()" {
		t.Errorf("condition rewrite: %s", got)
	}
	if tmpl.String() == got {
		t.Error("rewriting changed the original")
	}
}
