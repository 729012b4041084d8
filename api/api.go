// Package api holds the integration contract of supportbridge as an
// OpenAPI 3.1 document: every endpoint the daemon serves, the six ENT
// events it takes with the decoder's rules as JSON Schemas, its answers
// and error codes, and the callbacks it sends to the ENT (the document's
// webhooks). The daemon serves it at GET /openapi.yaml; the ENT's
// developers generate their client from it. Package apitest validates
// requests, responses and callbacks against it.
//
// It imports nothing of supportbridge, so that any package may import it.
package api

import _ "embed"

//go:embed openapi.yaml
var document []byte

// Document returns the OpenAPI 3.1 document (YAML). The caller gets its
// own copy.
func Document() []byte {
	return append([]byte(nil), document...)
}
