package runbook_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/baton-ci/baton/shared/runbook"
)

// The published schema is the embedded one, and every mapping it describes
// has exactly the keys the parser accepts.
func TestSchemaMatchesParser(t *testing.T) {
	t.Parallel()
	published, err := os.ReadFile("../../docs/runbook.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(published, runbook.Schema) {
		t.Fatal("docs/runbook.schema.json differs from shared/runbook/schema.json: copy it over")
	}
	var schema map[string]any
	if err := json.Unmarshal(runbook.Schema, &schema); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	defs := schema["$defs"].(map[string]any)
	props := func(v any) map[string]any { return v.(map[string]any)["properties"].(map[string]any) }
	stepRetry := props(defs["step"])["retry"].(map[string]any)["oneOf"].([]any)[1]
	objects := map[string]map[string]any{
		"runbook":   props(schema),
		"global":    props(props(schema)["global"]),
		"step":      props(defs["step"]),
		"param":     props(defs["param"]),
		"retry":     props(stepRetry),
		"assert":    props(props(defs["step"])["assert"]),
		"include":   props(props(schema)["include"].(map[string]any)["items"]),
		"approval":  props(props(defs["step"])["approval"].(map[string]any)["oneOf"].([]any)[1]),
		"on":        props(props(schema)["on"]),
		"resources": props(defs["resources"]),
		"trigger":   props(defs["trigger"].(map[string]any)["oneOf"].([]any)[1]),
	}
	if len(objects) != len(runbook.Keys) {
		t.Errorf("schema checks %d mappings, the parser has %d", len(objects), len(runbook.Keys))
	}
	for what, keys := range runbook.Keys {
		got := []string{}
		for k := range objects[what] {
			got = append(got, k)
		}
		want := append([]string{}, keys...)
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s keys: schema has %v, parser accepts %v", what, got, want)
		}
	}
}

// Every good runbook validates against the schema, and bad ones that the
// schema can see are refused by it too.
func TestSchemaValidatesRunbooks(t *testing.T) {
	t.Parallel()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(runbook.Schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("runbook.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("runbook.schema.json")
	if err != nil {
		t.Fatalf("schema does not compile: %v", err)
	}
	asJSON := func(t *testing.T, file string) any {
		t.Helper()
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := yaml.Unmarshal(text, &v); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return inst
	}
	good, _ := filepath.Glob("testdata/good/*.yml")
	for _, f := range good {
		if err := sch.Validate(asJSON(t, f)); err != nil {
			t.Errorf("%s: the parser accepts it, the schema does not: %v", f, err)
		}
	}
	for _, f := range []string{"unknown_top_key", "command_not_string", "retry_invalid", "steps_not_list", "command_list_empty"} {
		file := "testdata/bad/" + f + ".yml"
		if _, err := os.Stat(file); err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		if err := sch.Validate(asJSON(t, file)); err == nil {
			t.Errorf("%s: the parser refuses it, the schema accepts it", file)
		}
	}
}
