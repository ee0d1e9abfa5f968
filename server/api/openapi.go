package api

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the OpenAPI 3.1 document of every route of Router, served at
// GET /api/v1/openapi.json (admin token, like the rest of the admin API).
// docs/openapi.json is the same file; a test checks both against the
// routes.
//
//go:embed openapi.json
var OpenAPI []byte

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(OpenAPI)
}
