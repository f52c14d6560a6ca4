package mapping

// FuzzSeeds are valid and invalid documents that reach every part of the
// parser, for the fuzz targets inside and outside the package.
var FuzzSeeds = []string{
	"",
	"version: 1\nvms: {}\n",
	"version: 1\nvms:\n  a:\n    ips: [192.0.2.1]\n",
	"version: 1\ndefaults:\n  communities: [\"65001:100\", no-export]\n  large-communities: [\"1:2:3\"]\n" +
		"  med: 10\n  local-pref: 200\n  as-path-prepend: 2\n  next-hop: self\nvms:\n" +
		"  web-01:\n    uuid: 6695eb01-f6a4-8304-79aa-97f2502e193f\n    next-hop: 192.0.2.254\n" +
		"    ips:\n      - 192.0.2.10\n      - 192.0.2.64/28\n      - prefix: 2001:db8::10\n        next-hop: 2001:db8::1\n" +
		"        communities: [blackhole, graceful-shutdown, no-advertise]\n" +
		"  6695EB01-F6A4-8304-79AA-97F2502E1940:\n    ips: [198.51.100.7, \"2001:db8:1::/48\"]\n",
	"version: 1\nvms:\n  a: {ips: [192.0.2.0/24]}\n  b: {ips: [192.0.2.1, 192.0.2.1]}\n",
	"version: 1\nvms:\n  a: {uuid: 6695eb01-f6a4-8304-79aa-97f2502e193f, ips: [192.0.2.1]}\n" +
		"  6695eb01-f6a4-8304-79aa-97f2502e193f: {ips: [192.0.2.2]}\n",
	"version: 1\nvms:\n  a:\n    ips: [127.0.0.1, ::ffff:1.2.3.4, fe80::1%eth0, 0.0.0.0/0, 192.0.2.65/28, x]\n",
	"version: 1\ndefaults: &d {med: 1}\nvms:\n  a:\n    <<: *d\n    ips: [192.0.2.1]\n  b: *d\n",
	"version: 2\nvms:\n  a:\n  b: []\n  c: {ips: []}\n  ~: {ips: [1.2.3.4]}\n",
	"version: 1\nvms:\n  a: {ips: [192.0.2.1\n",
	"version: 1\nvms: {}\n---\nversion: 1\n",
	"- 1\n",
	"version: 1\nvms:\n  a:\n    med: 4294967296\n    communities: [\"65536:1\"]\n    ips: [{med: 1}, [1], ~]\n",
	"%YAML 1.1\n---\nversion: 1\nvms:\n  a: {ips: [192.0.2.1]}\n",
	"version: 1\nvms:\n  a:\n    ips:\n    - 192.0.2.1\n  b:\n    ips: [\"192.0.2.2\",\n  \"192.0.2.3\"]\n",
	"version: 1\nvms:\n  a: {ips: [192.0.2.1]}\n  a: {ips: [192.0.2.2]}\n",
}
