package httpapi

import (
	"net/http"
	"strconv"

	"supportbridge/api"
)

// openAPIDocument is the OpenAPI 3.1 document of the contract, read once.
var openAPIDocument = api.Document()

// handleOpenAPI serves the contract's OpenAPI document. It needs no token:
// it says what the API is, nothing of what it holds.
func (s *Server) handleOpenAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/yaml")
	h.Set("Content-Length", strconv.Itoa(len(openAPIDocument)))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPIDocument)
}
