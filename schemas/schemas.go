// Package schemas is the source of truth for orderpipe's external contracts: the JSON Schemas
// (draft 2020-12) of every event carried on Kafka and the OpenAPI 3.0 description of the HTTP API.
//
// Event schema files are named <event>.v<N>.json and their $id is
// https://schemas.orderpipe.dev/<file name>; a published version is never edited in a way that
// rejects a document it used to accept. Frozen example documents of every version live in
// testdata/<event>/ and a test proves they still validate against the current schema.
//
// Go code reaches the files through [FS]; internal/event compiles the event schemas from it.
package schemas

import "embed"

// FS holds every event schema (*.json) and openapi.yaml. It is read-only.
//
//go:embed *.json openapi.yaml
var FS embed.FS
