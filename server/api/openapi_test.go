package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/baton-ci/baton/server/api"
	"github.com/baton-ci/baton/shared/protocol"
	"github.com/baton-ci/baton/shared/runbook"
)

// The published document is the embedded one.
func TestOpenAPIPublished(t *testing.T) {
	t.Parallel()
	published, err := os.ReadFile("../../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(published, api.OpenAPI) {
		t.Fatal("docs/openapi.json differs from server/api/openapi.json: copy it over")
	}
}

// openAPIDoc is the part of the document the tests read.
type openAPIDoc struct {
	OpenAPI  string                                `json:"openapi"`
	Security []map[string][]string                 `json:"security"`
	Paths    map[string]map[string]json.RawMessage `json:"paths"`
}

type openAPIOperation struct {
	OperationID string                     `json:"operationId"`
	Security    *[]map[string][]string     `json:"security"`
	Responses   map[string]json.RawMessage `json:"responses"`
	Parameters  []struct {
		Name     string `json:"name"`
		In       string `json:"in"`
		Required bool   `json:"required"`
	} `json:"parameters"`
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	dec := json.NewDecoder(bytes.NewReader(api.OpenAPI))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q, want 3.x", doc.OpenAPI)
	}
	return doc
}

// routes lists the router's routes as "METHOD /path" with OpenAPI path
// templates: chi's trailing wildcard (the artifact key) is {key}. The UI's
// catch-all /* is not part of the API.
func routes(t *testing.T, h http.Handler) []string {
	t.Helper()
	var out []string
	err := chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if route == "/*" {
			return nil
		}
		if p, ok := strings.CutSuffix(route, "/*"); ok {
			route = p + "/{key}"
		}
		out = append(out, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIMatchesRoutes fails when the router has a route the document
// lacks, or the document one the router lacks.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.srv.UI = http.NotFoundHandler() // the catch-all is excluded, not missed
	have := routes(t, ts.srv.Router())
	doc := loadOpenAPI(t)
	var documented []string
	for path, item := range doc.Paths {
		for method := range item {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	sort.Strings(documented)
	for _, r := range have {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in server/api/openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(have, d) {
			t.Errorf("openapi.json documents %s, which the router does not have", d)
		}
	}
	if len(have) < 40 {
		t.Errorf("only %d routes walked: %v", len(have), have)
	}
}

// TestOpenAPIDocument checks the document itself: unique operation ids,
// every path parameter declared, responses, and every $ref resolvable.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	ids := map[string]string{}
	param := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range doc.Paths {
		for method, raw := range item {
			var op openAPIOperation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			where := strings.ToUpper(method) + " " + path
			if op.OperationID == "" || ids[op.OperationID] != "" {
				t.Errorf("%s: operationId %q missing or also used by %s", where, op.OperationID, ids[op.OperationID])
			}
			ids[op.OperationID] = where
			if len(op.Responses) == 0 {
				t.Errorf("%s: no responses", where)
			}
			for _, m := range param.FindAllStringSubmatch(path, -1) {
				if !slices.ContainsFunc(op.Parameters, func(p struct {
					Name     string `json:"name"`
					In       string `json:"in"`
					Required bool   `json:"required"`
				}) bool {
					return p.Name == m[1] && p.In == "path" && p.Required
				}) {
					t.Errorf("%s: path parameter %s is not declared (required, in path)", where, m[1])
				}
			}
		}
	}
	var all any
	json.Unmarshal(api.OpenAPI, &all)
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if resolve(all, ref) == nil {
					t.Errorf("$ref %s does not resolve", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(all)
}

// resolve follows a local JSON pointer such as #/components/schemas/Run.
func resolve(doc any, ref string) any {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	cur := doc
	for _, part := range strings.Split(p, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")]
	}
	return cur
}

// TestOpenAPISecurity calls every documented operation without credentials:
// those the document says need the admin token or an agent JWT must be
// refused with 401, and the others must not ask for either.
func TestOpenAPISecurity(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	doc := loadOpenAPI(t)
	fill := strings.NewReplacer("{key}", "dist/app.tgz", "{provider}", "github", "{project}", "web", "{id}", "0199e6a0-0000-7000-8000-000000000000", "{name}", "build")
	for path, item := range doc.Paths {
		for method, raw := range item {
			var op openAPIOperation
			json.Unmarshal(raw, &op)
			security := doc.Security
			if op.Security != nil {
				security = *op.Security
			}
			var schemes []string
			for _, s := range security {
				for name := range s {
					schemes = append(schemes, name)
				}
			}
			req, _ := http.NewRequest(strings.ToUpper(method), ts.URL+fill.Replace(path)+"?attempt=1&lease=x&offset=0", strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			resp, err := ts.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			where := strings.ToUpper(method) + " " + path
			askedAdmin := resp.StatusCode == http.StatusUnauthorized && bytes.Contains(body, []byte("admin token required"))
			askedAgent := resp.StatusCode == http.StatusUnauthorized && bytes.Contains(body, []byte("agent access token"))
			switch {
			case slices.Equal(schemes, []string{"adminToken"}):
				if !askedAdmin {
					t.Errorf("%s is documented as needing the admin token; without it: %d %s", where, resp.StatusCode, body)
				}
			case slices.Equal(schemes, []string{"agentToken"}):
				if !askedAgent {
					t.Errorf("%s is documented as needing an agent JWT; without it: %d %s", where, resp.StatusCode, body)
				}
			case len(schemes) == 0:
				if askedAdmin || askedAgent {
					t.Errorf("%s is documented as taking no bearer token but answered %d %s", where, resp.StatusCode, body)
				}
			default:
				t.Errorf("%s: security schemes %v", where, schemes)
			}
		}
	}
}

// The document is served to admins, as JSON.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	resp, err := ts.client.Get(ts.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the admin token: %s, want 401", resp.Status)
	}
	req, _ := http.NewRequest("GET", ts.URL+"/api/v1/openapi.json", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err = ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || !bytes.Equal(body, api.OpenAPI) {
		t.Errorf("GET /api/v1/openapi.json: %s %q, %d bytes (want the %d of openapi.json)", resp.Status, resp.Header.Get("Content-Type"), len(body), len(api.OpenAPI))
	}
}

// TestOpenAPIBodies checks real answers of the main routes against the
// document's schemas, whose objects allow no other fields: a field added to
// (or renamed in) a wire type fails here until the document says so.
func TestOpenAPIBodies(t *testing.T) {
	t.Parallel()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(api.OpenAPI))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("openapi.json", doc); err != nil {
		t.Fatal(err)
	}
	schema := func(name string) *jsonschema.Schema {
		t.Helper()
		s, err := c.Compile("openapi.json#/components/schemas/" + name)
		if err != nil {
			t.Fatalf("schema %s: %v", name, err)
		}
		return s
	}
	check := func(what string, res *response, status int, name string, list bool) {
		t.Helper()
		wantStatus(t, what, res, status)
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(res.Body))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		items := []any{v}
		if list {
			items = v.([]any)
			if len(items) == 0 {
				t.Fatalf("%s: an empty list checks nothing", what)
			}
		}
		for _, item := range items {
			if err := schema(name).Validate(item); err != nil {
				t.Errorf("%s does not match the schema %s: %v\n%s", what, name, err, res.Body)
			}
		}
	}

	ts := newTestServer(t)
	// Registration and tokens, the agent's side included.
	check("create registration token", ts.admin(t, "POST", "/api/v1/registration-tokens",
		protocol.CreateRegistrationTokenRequest{Description: "d", ExpiresIn: "1h", MaxUses: 2}), http.StatusCreated, "RegistrationToken", false)
	check("list registration tokens", ts.admin(t, "GET", "/api/v1/registration-tokens", nil), http.StatusOK, "RegistrationToken", true)
	signing, hpke := newAgentKeys(t)
	id := uuid.NewString()
	check("register", ts.register(t, registerRequest(ts.registrationToken(t), id, "agent-1", signing, hpke)), http.StatusOK, "RegisterResponse", false)
	check("agent token", ts.requestToken(t, id, signing, time.Now()), http.StatusOK, "TokenResponse", false)
	agent := ts.newAgent(t, "agent-2")
	check("agent state", agent.call(t, ts, "GET", protocol.PathAgentState, "", nil), http.StatusOK, "AgentState", false)

	// A run with settings, a secret, an approval and a finished step.
	check("put project", ts.admin(t, "PUT", "/api/v1/projects/shop", protocol.Project{MaxRunning: 2, Weight: 3,
		Repository: &protocol.Repository{URL: "https://git.example/shop.git", DefaultBranch: "main"}}), http.StatusOK, "Project", false)
	check("get project", ts.admin(t, "GET", "/api/v1/projects/shop", nil), http.StatusOK, "Project", false)
	wantStatus(t, "put secret", ts.admin(t, "PUT", "/api/v1/projects/shop/secrets/TOKEN", map[string]string{"value": "s3cret-value"}), http.StatusNoContent)
	check("list secrets", ts.admin(t, "GET", "/api/v1/projects/shop/secrets", nil), http.StatusOK, "SecretNames", false)
	const runbook = `name: shop
params:
  who: {type: string, default: you}
steps:
  - name: build
    command: echo ${{ params.who }}
    secrets: [TOKEN]
    retry: {max: 1, on: [exit_code]}
  - name: ship
    command: echo ship
    depends_on: [build]
    approval: {required: true, message: "ship it"}
`
	check("dry run", ts.admin(t, "POST", "/api/v1/runs?dry_run=true", protocol.CreateRunRequest{Project: "shop", Runbook: runbook}), http.StatusOK, "Plan", false)
	run := ts.createRun(t, "shop", runbook)
	check("queue", ts.admin(t, "GET", "/api/v1/queue", nil), http.StatusOK, "QueueLine", true)
	res := agent.reserve(t, ts, "0s")
	check("reserve", res, http.StatusOK, "Reservation", false)
	as := agent.open(t, ts, res)
	lease := protocol.LeaseRequest{Attempt: as.Attempt, LeaseID: as.LeaseID}
	check("renew lease", agent.call(t, ts, "POST", fmt.Sprintf(protocol.PathStepLease, as.StepID), "application/json", mustJSON(t, lease)),
		http.StatusOK, "Lease", false)
	check("agent with a running step", ts.admin(t, "GET", "/api/v1/agents/"+agent.ID, nil), http.StatusOK, "Agent", false)
	wantStatus(t, "complete", agent.complete(t, ts, as.StepID, protocol.StepResult{Attempt: as.Attempt, ExitCode: new(0),
		Outputs: map[string]string{"version": "1.0"}}), http.StatusNoContent)
	check("get run", ts.admin(t, "GET", "/api/v1/runs/"+run.ID, nil), http.StatusOK, "Run", false)
	check("approve", ts.admin(t, "POST", "/api/v1/runs/"+run.ID+"/steps/ship/approve", protocol.Decision{Comment: "ok"}), http.StatusOK, "Run", false)
	check("cancel", ts.admin(t, "POST", "/api/v1/runs/"+run.ID+"/cancel", nil), http.StatusOK, "Run", false)
	check("audit", ts.admin(t, "GET", "/api/v1/runs/"+run.ID+"/audit", nil), http.StatusOK, "AuditEvent", true)
	check("retry", ts.admin(t, "POST", "/api/v1/runs/"+run.ID+"/retry", nil), http.StatusCreated, "Run", false)
	check("list agents", ts.admin(t, "GET", "/api/v1/agents", nil), http.StatusOK, "Agent", true)
	check("agent config", ts.admin(t, "PUT", "/api/v1/agents/"+agent.ID+"/config", protocol.AgentSettings{PoolSize: 2, EvictionTime: "30m"}),
		http.StatusOK, "Agent", false)
	check("put schedule", ts.admin(t, "PUT", "/api/v1/projects/shop/schedules/nightly", protocol.Schedule{Cron: "@daily", Runbook: "steps:\n  - name: a\n    command: echo a\n"}),
		http.StatusOK, "Schedule", false)
	check("list schedules", ts.admin(t, "GET", "/api/v1/projects/shop/schedules", nil), http.StatusOK, "Schedule", true)
	check("an error", ts.admin(t, "POST", "/api/v1/runs", protocol.CreateRunRequest{Project: "shop", Runbook: "steps: [{name: a}]"}),
		http.StatusBadRequest, "Error", false)
}

// TestOpenAPISchemasMatchWireTypes compares each object schema with the Go
// type it describes: the same JSON field names, and the same required ones
// (those without omitempty).
func TestOpenAPISchemasMatchWireTypes(t *testing.T) {
	t.Parallel()
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
				Required   []string                   `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	types := map[string]any{
		"Error": protocol.Error{}, "Source": protocol.Source{}, "CreateRunRequest": protocol.CreateRunRequest{},
		"Run": protocol.Run{}, "Step": protocol.Step{}, "Attempt": protocol.Attempt{},
		"Plan": runbook.Plan{}, "PlanStep": runbook.PlanStep{}, "Decision": protocol.Decision{},
		"AuditEvent": protocol.AuditEvent{}, "QueueLine": protocol.QueueLine{}, "Repository": protocol.Repository{},
		"Project": protocol.Project{}, "Schedule": protocol.Schedule{}, "AgentConfig": protocol.AgentConfig{},
		"AgentSettings": protocol.AgentSettings{}, "RunningStep": protocol.RunningStep{}, "Agent": protocol.Agent{},
		"RegistrationToken": protocol.RegistrationToken{}, "CreateRegistrationTokenRequest": protocol.CreateRegistrationTokenRequest{},
		"RegisterRequest": protocol.RegisterRequest{}, "RegisterResponse": protocol.RegisterResponse{},
		"TokenRequest": protocol.TokenRequest{}, "TokenResponse": protocol.TokenResponse{}, "AgentState": protocol.AgentState{},
		"Reservation": protocol.Reservation{}, "Assignment": protocol.Assignment{}, "LeaseRequest": protocol.LeaseRequest{},
		"Lease": protocol.Lease{}, "StepResult": protocol.StepResult{}, "TriggerRequest": protocol.TriggerRequest{},
		"TriggerResponse": protocol.TriggerResponse{}, "Artifact": protocol.Artifact{},
		"FleetCommand": protocol.FleetCommand{}, "FleetResult": protocol.FleetResult{},
	}
	for name, v := range types {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("no schema %s", name)
			continue
		}
		var fields, required, props []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			tag := rt.Field(i).Tag.Get("json")
			field, opts, _ := strings.Cut(tag, ",")
			if field == "-" || !rt.Field(i).IsExported() {
				continue
			}
			if field == "" {
				field = rt.Field(i).Name
			}
			fields = append(fields, field)
			if !strings.Contains(opts, "omitempty") {
				required = append(required, field)
			}
		}
		for p := range s.Properties {
			props = append(props, p)
		}
		sort.Strings(fields)
		sort.Strings(props)
		sort.Strings(required)
		have := slices.Sorted(slices.Values(s.Required))
		if !slices.Equal(fields, props) {
			t.Errorf("schema %s has the properties %v; %T has the fields %v", name, props, v, fields)
		}
		// Request bodies may leave out what the server defaults; answers
		// always carry the fields without omitempty.
		if !strings.HasSuffix(name, "Request") && name != "Decision" && name != "AgentSettings" && name != "Project" && name != "Schedule" &&
			!slices.Equal(have, required) {
			t.Errorf("schema %s requires %v; %T always has %v", name, have, v, required)
		}
	}
}
