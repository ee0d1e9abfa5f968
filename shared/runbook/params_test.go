package runbook_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/runbook"
)

func TestResolveParams(t *testing.T) {
	t.Parallel()
	text, err := os.ReadFile("testdata/good/params.yml")
	if err != nil {
		t.Fatal(err)
	}
	rb, err := runbook.Parse("params.yml", text)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rb.ResolveParams(map[string]any{"version": "1.2.3", "replicas": "5", "dry_run": true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"version": "1.2.3", "replicas": float64(5), "dry_run": true, "env": "staging", "note": ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resolved %v, want %v", got, want)
	}
	_, err = rb.ResolveParams(map[string]any{"replicas": "lots", "env": "prod", "verison": "1", "dry_run": nil})
	if err == nil {
		t.Fatal("bad params accepted")
	}
	for _, want := range []string{
		`param "version" is required`,
		`param "replicas" (number): "lots" is not a number`,
		`param "env" (enum): "prod" is not one of staging, production`,
		`unknown param "verison" (did you mean version?)`,
		`param "dry_run" is null`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
