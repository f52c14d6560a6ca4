package schema_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"time"

	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/mapping"
)

// format is one of the two file formats: its schema and its parser.
type format struct {
	schemaFile string
	parse      func(t *testing.T, dir string, data []byte) error
	full       string // a valid document with every key the parser knows
}

var (
	configFormat = format{
		schemaFile: "config.schema.json",
		parse: func(t *testing.T, dir string, data []byte) error {
			_, err := config.Parse(filepath.Join(dir, "virtbgp.yaml"), data)
			return err
		},
		full: `version: 1
libvirt: {uri: "qemu:///system"}
bgp:
  asn: 65001
  router-id: 192.0.2.1
  listen-port: 179
  graceful-restart: {enabled: true, restart-time: 1s, long-lived-stale-time: 3600s, notification: true}
  peers:
    - address: 198.18.0.1
      asn: 65000
      port: 179
      password-file: tor.pw
      passive: false
      hold-time: 9s
      keepalive: 3s
      multihop-ttl: 2
      local-address: 198.18.0.2
      families: [ipv4, ipv6]
      next-hop-ipv6: 2001:db8::2
      export: {communities: ["65001:300"], large-communities: ["65001:3:4"], as-path-prepend: 1, med: 50, families: [ipv4], prefixes: [192.0.2.0/24]}
      receive-limit: 1000
      receive-limit-action: warn
    - address: 2001:db8::1
      asn: 65000
      password: secret
      next-hop-ipv4: 198.18.0.2
mapping:
  path: mapping.yaml
  watch: true
  metadata:
    enabled: true
    allowed-prefixes: [192.0.2.0/24]
    min-prefix-length: {ipv4: 30, ipv6: 126}
    allowed-next-hops: [198.18.0.0/24]
    defaults: {communities: ["65001:200"], large-communities: ["65001:1:2"], med: 5, local-pref: 100, as-path-prepend: 1, next-hop: self}
    health:
      types: [agent, tcp, http]
      min-interval: 2s
      max-checks: 4
      defaults:
        on-failure: depreference
        initial: up
        depreference: {communities: ["65001:666"], med: 1000, as-path-prepend: 2}
        checks:
          - {type: http, name: web, url: "http://{ip}/health", status: 200, body: ready, interval: 1s, timeout: 500ms, rise: 2, fall: 3, maintenance: /run/virtbgp/web.maint}
          - {type: exec, command: [/usr/local/bin/check]}
          - {type: tcp, address: "{ip}:22"}
  nova:
    enabled: true
    ip-types: [fixed, floating]
    allowed-prefixes: [198.51.100.0/24]
    allowed-next-hops: [198.18.0.0/24]
    attributes: {communities: [no-export], large-communities: ["65001:3:4"], med: 10, local-pref: 100, as-path-prepend: 0, next-hop: self}
    health: {checks: [{type: agent}]}
status: {listen: "127.0.0.1:9479"}
routes: {min-prefix-length: {ipv4: 24, ipv6: 48}, allowed-prefixes: [192.0.2.0/24, 198.51.100.0/24]}
policy: {paused: keep, standby-prepend: 3}
resync-interval: 5m
state-dir: /var/lib/virtbgp
control: {socket: /run/virtbgp/control.sock, read-group: nogroup}
api:
  allowed-prefixes: [198.51.100.0/24]
  min-prefix-length: {ipv4: 24, ipv6: 64}
  allowed-next-hops: [198.51.100.0/24]
  write-rate: 10
  listen: 127.0.0.1:9480
  tokens: [{name: ci, file: api.token, access: read-write}]
  tls: {cert: api.pem, key: api.key, client-ca: api.pem}
drain: {graceful-shutdown-time: 60s}
`,
	}
	mappingFormat = format{
		schemaFile: "mapping.schema.json",
		parse: func(t *testing.T, dir string, data []byte) error {
			_, err := mapping.Parse(filepath.Join(dir, "mapping.yaml"), data)
			return err
		},
		full: `version: 1
defaults: {communities: ["65001:100"], large-communities: ["65001:1:2"], med: 10, local-pref: 200, as-path-prepend: 0, next-hop: self}
vms:
  web-01:
    uuid: 6695eb01-f6a4-8304-79aa-97f2502e193f
    communities: [no-export]
    large-communities: ["65001:5:6"]
    med: 20
    local-pref: 100
    as-path-prepend: 1
    next-hop: self
    health:
      on-failure: depreference
      initial: up
      depreference: {communities: ["65001:666"], med: 1000, as-path-prepend: 2}
      checks:
        - {type: http, name: web, url: "http://{ip}/health", status: 200, body: ready, interval: 1s, timeout: 500ms, rise: 2, fall: 3, maintenance: /run/virtbgp/web.maint}
    ips:
      - 192.0.2.10
      - 2001:db8::10
      - prefix: 192.0.2.12
        anycast: true
        health: {checks: [{type: tcp, address: "{ip}:22"}, {type: exec, command: [/usr/local/bin/check]}, {type: agent}]}
      - prefix: 192.0.2.11
        communities: ["65001:7"]
        large-communities: ["65001:7:8"]
        med: 30
        local-pref: 300
        as-path-prepend: 2
        next-hop: 198.18.0.11
  0c1a5e2e-7f9b-4d5c-8f1e-2a3b4c5d6e7f:
    ips: [198.51.100.7]
`,
	}
)

// workDir is a directory with the files the full config names.
func workDir(t *testing.T) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tor.pw"), []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mapping.yaml"), []byte(mappingFormat.full), 0o644); err != nil {
		t.Fatal(err)
	}
	// The api section's token, and a self-signed certificate for its tls.
	if err := os.WriteFile(filepath.Join(dir, "api.token"), []byte("0123456789abcdef-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "virtbgp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{"api.pem": {Type: "CERTIFICATE", Bytes: der}, "api.key": {Type: "EC PRIVATE KEY", Bytes: kder}} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loadSchema reads a schema as JSON values, for walking.
func loadSchema(t *testing.T, f format) map[string]any {
	data, err := os.ReadFile(f.schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("%s: %v", f.schemaFile, err)
	}
	return s
}

// compile compiles a schema with format assertions on.
func compile(t *testing.T, f format) *jsonschema.Schema {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(f.schemaFile)
	if err != nil {
		t.Fatalf("%s: %v", f.schemaFile, err)
	}
	return s
}

// validate checks a YAML document against the schema.
func validate(t *testing.T, s *jsonschema.Schema, data []byte) error {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("YAML: %v", err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("as JSON: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(j)))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(inst)
}

// resolve follows a local $ref ("#/$defs/name").
func resolve(root, s map[string]any) map[string]any {
	for {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		s = root["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
	}
}

// objectBranch is the branch of s for a YAML mapping: s, or its oneOf's
// object branch.
func objectBranch(root, s map[string]any) map[string]any {
	s = resolve(root, s)
	if alts, ok := s["oneOf"].([]any); ok {
		for _, a := range alts {
			if b := resolve(root, a.(map[string]any)); b["type"] == "object" {
				return b
			}
		}
	}
	return s
}

// closedObjects returns every object schema of the schema that lists its
// properties and allows no other: the ones the parsers' key lists match.
func closedObjects(v any, out map[uintptr]string, path string) {
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x["properties"]; ok && x["additionalProperties"] == false {
			out[reflect.ValueOf(x).Pointer()] = path
		}
		for k, c := range x {
			closedObjects(c, out, path+"/"+k)
		}
	case []any:
		for _, c := range x {
			closedObjects(c, out, path+"/*")
		}
	}
}

// walk calls visit for every YAML mapping of n with its schema.
func walk(root, s map[string]any, n *yaml.Node, visit func(n *yaml.Node, s map[string]any)) {
	switch n.Kind {
	case yaml.DocumentNode:
		walk(root, s, n.Content[0], visit)
	case yaml.MappingNode:
		s = objectBranch(root, s)
		visit(n, s)
		props, _ := s["properties"].(map[string]any)
		for i := 0; i+1 < len(n.Content); i += 2 {
			if c, ok := props[n.Content[i].Value].(map[string]any); ok {
				walk(root, c, n.Content[i+1], visit)
			} else if c, ok := s["additionalProperties"].(map[string]any); ok {
				walk(root, c, n.Content[i+1], visit)
			}
		}
	case yaml.SequenceNode:
		if items, ok := resolve(root, s)["items"].(map[string]any); ok {
			for _, c := range n.Content {
				walk(root, items, c, visit)
			}
		}
	}
}

var unknownKey = regexp.MustCompile(`unknown key "zz-not-a-key" \(allowed: ([^)]*)\)`)

// TestSchemaKeysAreTheParsers: at every level of a document with every
// key, the parser's allowed keys (from its error for an unknown key put
// there) are the schema's properties; and every closed object of the
// schema is such a level.
func TestSchemaKeysAreTheParsers(t *testing.T) {
	for _, f := range []format{configFormat, mappingFormat} {
		t.Run(f.schemaFile, func(t *testing.T) {
			root := loadSchema(t, f)
			dir := workDir(t)
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(f.full), &doc); err != nil {
				t.Fatal(err)
			}
			if err := f.parse(t, dir, []byte(f.full)); err != nil {
				t.Fatalf("the full document does not parse: %v", err)
			}
			want := map[uintptr]string{}
			closedObjects(root, want, "")
			walk(root, root, &doc, func(n *yaml.Node, s map[string]any) {
				if s["additionalProperties"] != false {
					return
				}
				delete(want, reflect.ValueOf(s).Pointer())
				var schemaKeys []string
				for k := range s["properties"].(map[string]any) {
					schemaKeys = append(schemaKeys, k)
				}
				// The parser's keys here: its message for an unknown one.
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "zz-not-a-key"},
					&yaml.Node{Kind: yaml.ScalarNode, Value: "1"})
				data, err := yaml.Marshal(&doc)
				n.Content = n.Content[:len(n.Content)-2]
				if err != nil {
					t.Fatal(err)
				}
				perr := f.parse(t, dir, data)
				m := unknownKey.FindStringSubmatch(errString(perr))
				if m == nil {
					t.Errorf("at line %d: the parser did not reject an unknown key: %v", n.Line, perr)
					return
				}
				parserKeys := strings.Split(m[1], ", ")
				slices.Sort(parserKeys)
				slices.Sort(schemaKeys)
				if !slices.Equal(parserKeys, schemaKeys) {
					t.Errorf("the mapping at line %d: the parser allows %v, the schema %v", n.Line, parserKeys, schemaKeys)
				}
			})
			for _, path := range want {
				t.Errorf("the schema's object %s is not reached by the full document: add its keys to it", path)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestSchemaAcceptsValid: the schemas accept the shipped examples and the
// full documents, which the parsers accept too.
func TestSchemaAcceptsValid(t *testing.T) {
	for _, tc := range []struct {
		f    format
		file string // "" for f.full
	}{
		{configFormat, ""},
		{configFormat, "../examples/virtbgp.yaml"},
		{configFormat, "../examples/demo.yaml"},
		{mappingFormat, ""},
		{mappingFormat, "../examples/mapping.yaml"},
		{mappingFormat, "../examples/mapping.d/example.yaml"},
	} {
		name := tc.file
		data := []byte(tc.f.full)
		dir := workDir(t)
		if name == "" {
			name = tc.f.schemaFile + " full document"
		} else {
			var err error
			if data, err = os.ReadFile(tc.file); err != nil {
				t.Fatal(err)
			}
			dir = filepath.Dir(tc.file)
		}
		if err := tc.f.parse(t, dir, data); err != nil {
			t.Errorf("%s: the parser rejects it: %v", name, err)
		}
		if err := validate(t, compile(t, tc.f), data); err != nil {
			t.Errorf("%s: the schema rejects it: %v", name, err)
		}
	}
}

// TestSchemaRejectsInvalid: files the parsers reject for what a schema
// can say (unknown keys, types, ranges, enumerations, required keys) are
// rejected by the schemas too.
func TestSchemaRejectsInvalid(t *testing.T) {
	cfg := func(edit string) string {
		return "version: 1\nbgp: {asn: 65001, router-id: 192.0.2.1}\nmapping: {path: mapping.yaml}\n" + edit
	}
	for _, tc := range []struct {
		name string
		f    format
		doc  string
	}{
		{"config: unknown top-level key", configFormat, cfg("colour: blue\n")},
		{"config: version 2", configFormat, strings.Replace(cfg(""), "version: 1", "version: 2", 1)},
		{"config: no bgp", configFormat, "version: 1\nmapping: {path: mapping.yaml}\n"},
		{"config: asn a string", configFormat, strings.Replace(cfg(""), "asn: 65001", "asn: x", 1)},
		{"config: asn 0", configFormat, strings.Replace(cfg(""), "asn: 65001", "asn: 0", 1)},
		{"config: router-id not IPv4", configFormat, strings.Replace(cfg(""), "192.0.2.1", "2001:db8::1", 1)},
		{"config: listen-port too big", configFormat, strings.Replace(cfg(""), "asn: 65001,", "asn: 65001, listen-port: 70000,", 1)},
		{"config: unknown peer key", configFormat, strings.Replace(cfg(""), "router-id: 192.0.2.1", "router-id: 192.0.2.1, peers: [{address: 198.18.0.1, asn: 65000, colour: red}]", 1)},
		{"config: peer without asn", configFormat, strings.Replace(cfg(""), "router-id: 192.0.2.1", "router-id: 192.0.2.1, peers: [{address: 198.18.0.1}]", 1)},
		{"config: password and password-file", configFormat, strings.Replace(cfg(""), "router-id: 192.0.2.1", "router-id: 192.0.2.1, peers: [{address: 198.18.0.1, asn: 65000, password: x, password-file: tor.pw}]", 1)},
		{"config: a family ipv5", configFormat, strings.Replace(cfg(""), "router-id: 192.0.2.1", "router-id: 192.0.2.1, peers: [{address: 198.18.0.1, asn: 65000, families: [ipv5]}]", 1)},
		{"config: unknown export key", configFormat, strings.Replace(cfg(""), "router-id: 192.0.2.1", "router-id: 192.0.2.1, peers: [{address: 198.18.0.1, asn: 65000, export: {colour: red}}]", 1)},
		{"config: export prepend 11", configFormat, strings.Replace(cfg(""), "router-id: 192.0.2.1", "router-id: 192.0.2.1, peers: [{address: 198.18.0.1, asn: 65000, export: {as-path-prepend: 11}}]", 1)},
		{"config: multihop-ttl 256", configFormat, strings.Replace(cfg(""), "router-id: 192.0.2.1", "router-id: 192.0.2.1, peers: [{address: 198.18.0.1, asn: 65000, multihop-ttl: 256}]", 1)},
		{"config: paused sometimes", configFormat, cfg("policy: {paused: sometimes}\n")},
		{"config: standby-prepend 1", configFormat, cfg("policy: {standby-prepend: 1}\n")},
		{"config: resync-interval in words", configFormat, cfg("resync-interval: 5 minutes\n")},
		{"config: watch a string", configFormat, strings.Replace(cfg(""), "{path: mapping.yaml}", "{path: mapping.yaml, watch: sometimes}", 1)},
		{"config: nova ip type", configFormat, strings.Replace(cfg(""), "{path: mapping.yaml}", "{path: mapping.yaml, nova: {enabled: true, allowed-prefixes: [198.51.100.0/24], ip-types: [public]}}", 1)},
		{"config: min-prefix-length 8", configFormat, strings.Replace(cfg(""), "{path: mapping.yaml}", "{path: mapping.yaml, metadata: {enabled: true, allowed-prefixes: [192.0.2.0/24], min-prefix-length: {ipv4: 8}}}", 1)},
		{"config: unknown attribute", configFormat, strings.Replace(cfg(""), "{path: mapping.yaml}", "{path: mapping.yaml, nova: {enabled: true, allowed-prefixes: [198.51.100.0/24], attributes: {weight: 1}}}", 1)},
		{"mapping: unknown top-level key", mappingFormat, "version: 1\nvms: {}\ncolour: blue\n"},
		{"mapping: no vms", mappingFormat, "version: 1\n"},
		{"mapping: version 2", mappingFormat, "version: 2\nvms: {}\n"},
		{"mapping: unknown VM key", mappingFormat, "version: 1\nvms:\n  web: {ips: [192.0.2.1], colour: blue}\n"},
		{"mapping: med -1", mappingFormat, "version: 1\nvms:\n  web: {ips: [192.0.2.1], med: -1}\n"},
		{"mapping: as-path-prepend 17", mappingFormat, "version: 1\nvms:\n  web: {ips: [192.0.2.1], as-path-prepend: 17}\n"},
		{"mapping: local-pref a string", mappingFormat, "version: 1\ndefaults: {local-pref: high}\nvms: {}\n"},
		{"mapping: an IP without prefix", mappingFormat, "version: 1\nvms:\n  web: {ips: [{med: 1}]}\n"},
		{"mapping: unknown IP key", mappingFormat, "version: 1\nvms:\n  web: {ips: [{prefix: 192.0.2.1, colour: red}]}\n"},
		{"mapping: an IP as a number", mappingFormat, "version: 1\nvms:\n  web: {ips: [42]}\n"},
		{"mapping: a bad UUID", mappingFormat, "version: 1\nvms:\n  web: {uuid: not-a-uuid, ips: [192.0.2.1]}\n"},
		{"mapping: a bad community", mappingFormat, "version: 1\nvms:\n  web: {communities: [\"65001 100\"], ips: [192.0.2.1]}\n"},
		{"mapping: a bad large community", mappingFormat, "version: 1\nvms:\n  web: {large-communities: [\"65001:1\"], ips: [192.0.2.1]}\n"},
		{"mapping: next-hop a word", mappingFormat, "version: 1\nvms:\n  web: {next-hop: gateway, ips: [192.0.2.1]}\n"},
		{"mapping: a check of an unknown type", mappingFormat, "version: 1\nvms:\n  web: {health: {checks: [{type: ping}]}, ips: [192.0.2.1]}\n"},
		{"mapping: health without checks", mappingFormat, "version: 1\nvms:\n  web: {health: {initial: up}, ips: [192.0.2.1]}\n"},
		{"mapping: rise 0", mappingFormat, "version: 1\nvms:\n  web: {health: {checks: [{type: agent, rise: 0}]}, ips: [192.0.2.1]}\n"},
		{"mapping: anycast a string", mappingFormat, "version: 1\nvms:\n  web: {ips: [{prefix: 192.0.2.1, anycast: yes please}]}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.f.parse(t, workDir(t), []byte(tc.doc)); err == nil {
				t.Fatalf("the parser accepts it; the case is wrong")
			}
			if err := validate(t, compile(t, tc.f), []byte(tc.doc)); err == nil {
				t.Errorf("the schema accepts what the parser rejects:\n%s", tc.doc)
			}
		})
	}
}

// TestExamplesNameTheSchemas: the host examples carry the line that makes
// editors validate them against the installed schemas.
func TestExamplesNameTheSchemas(t *testing.T) {
	for file, schema := range map[string]string{
		"../examples/virtbgp.yaml":           "config.schema.json",
		"../examples/mapping.d/example.yaml": "mapping.schema.json",
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		want := "# yaml-language-server: $schema=/usr/share/virtbgp/schema/" + schema + "\n"
		if !strings.HasPrefix(string(data), want) {
			t.Errorf("%s does not start with %q", file, want)
		}
		if _, err := os.Stat(schema); err != nil {
			t.Error(err)
		}
	}
}
