package runbook

import _ "embed"

// Schema is the JSON Schema of runbook.yml, for editors and other tools. It
// is published as docs/runbook.schema.json; a test keeps both in step with
// Keys.
//
//go:embed schema.json
var Schema []byte
