// Package schema holds the JSON Schemas (draft 2020-12) of virtbgp's two
// file formats, config.schema.json and mapping.schema.json, for editors
// that validate YAML as it is typed (the package installs them in
// /usr/share/virtbgp/schema; a file opts in with a first line
// "# yaml-language-server: $schema=/usr/share/virtbgp/schema/NAME.schema.json").
// It has no code; its tests keep the schemas equal to the parsers
// (internal/config, mapping): every key the parsers know, at every level,
// is in the schema and no other, the schemas accept the valid examples and
// reject invalid files the parsers reject. The parsers stay the authority:
// `virtbgp check` also checks what a schema cannot (duplicate IPs across
// files, password files, addresses of the right family).
package schema
