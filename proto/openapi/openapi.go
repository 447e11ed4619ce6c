// Package openapi holds the OpenAPI 3 document of Arbiter's HTTP/JSON API,
// openapi.yaml, generated from the protos' google.api.http options by
// protoc-gen-openapi (make proto; make proto-check fails when it is stale).
// The server serves it at /openapi.json (and /openapi.yaml) on -http-listen.
package openapi

import (
	_ "embed"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// YAML is the document as generated.
//
//go:embed openapi.yaml
var YAML []byte

// JSON returns the document as JSON (the same document: YAML's mappings,
// sequences and scalars as JSON's objects, arrays and values).
func JSON() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(YAML, &doc); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return json.Marshal(doc)
}
