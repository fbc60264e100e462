// Package api embeds the OpenAPI description of claimsvc's HTTP API, served
// at GET /openapi.yaml and checked against the router by internal/http tests.
package api

import _ "embed"

// Spec is api/openapi.yaml.
//
//go:embed openapi.yaml
var Spec []byte
