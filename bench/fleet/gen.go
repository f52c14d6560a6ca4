package fleet

// configYAML is the smallest config `virtbgp check` accepts, with the
// mapping at mappingPath (relative to the config's directory).
func configYAML(mappingPath string) string {
	return `version: 1
bgp:
  asn: 65001
  router-id: 192.0.2.1
mapping:
  path: ` + mappingPath + `
`
}
