package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/protocol"
)

var statusOf = map[string]int{
	server.ECONFLICT:     http.StatusConflict,
	server.EINVALID:      http.StatusBadRequest,
	server.ENOTFOUND:     http.StatusNotFound,
	server.EUNAUTHORIZED: http.StatusUnauthorized,
	server.EUNAVAILABLE:  http.StatusServiceUnavailable,
	server.EINTERNAL:     http.StatusInternalServerError,
	server.ETOOLARGE:     http.StatusRequestEntityTooLarge,
}

// writeError renders err: domain errors with their message, anything else as
// a generic 500 whose details go to the log only.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := server.ErrorCode(err)
	body := protocol.Error{Error: "internal error"}
	var e *server.Error
	if errors.As(err, &e) && code != server.EINTERNAL {
		body = protocol.Error{Error: e.Message, Details: e.Details}
	} else {
		s.Logger.ErrorContext(r.Context(), "request failed", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.Any("err", err))
	}
	writeJSON(w, statusOf[code], body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // keep "a -> b" readable; every answer is JSON, never HTML
	enc.Encode(v)
}

// decodeJSON reads a JSON body of at most limit bytes into v.
func decodeJSON(r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return server.Errorf(server.EINVALID, "invalid JSON body: %v", err)
	}
	return nil
}
