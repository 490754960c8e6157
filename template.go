// Package zenith embeds the SAM template so the table bootstrap, the local API
// server and the tests read tables and routes from the one place they are defined.
package zenith

import _ "embed"

// Template is template.yaml as checked in.
//
//go:embed template.yaml
var Template []byte

// OpenAPI is openapi.yaml, the HTTP contract of API.md as an OpenAPI 3.1 document.
//
//go:embed openapi.yaml
var OpenAPI []byte
