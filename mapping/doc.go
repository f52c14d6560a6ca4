// Package mapping reads, validates and queries the virtbgp mapping: which
// VM owns which service IPs, and with which BGP attributes each IP is
// announced. It is the reference for the format, and public so that other
// tools (a CI check of a mapping repository, an inventory exporter) can load
// a mapping exactly as the daemon does.
//
// # Format (version 1)
//
// A mapping is a YAML file, or a directory of them (see Load). Every key:
//
//	version: 1                     # required, must be 1
//	defaults:                      # optional: attributes of every IP in this file
//	  communities: ["65001:100"]   # list of "ASN:value" (each 0..65535), or the names
//	                               #   no-export, no-advertise, blackhole (65535:666),
//	                               #   graceful-shutdown (65535:0)
//	  large-communities: ["65001:1:2"]  # list of "GA:LD1:LD2" (each 0..4294967295)
//	  med: 10                      # 0..4294967295; default: none sent
//	  local-pref: 200              # 0..4294967295, iBGP only; default: none sent
//	  as-path-prepend: 1           # 0..16 extra copies of the local AS; default 0
//	  next-hop: self               # "self" (default: the session's address) or an IP address
//	vms:                           # required (may be {}): the entries
//	  web-01:                      # a libvirt domain name...
//	    uuid: 6695eb01-f6a4-8304-79aa-97f2502e193f   # optional pin, see below
//	    med: 20                    # any attribute key of defaults
//	    ips:                       # required, at least one
//	      - 192.0.2.10             # an address: a host route, /32 or /128
//	      - 2001:db8::10
//	      - 192.0.2.64/28          # or a prefix
//	      - prefix: 192.0.2.11     # or a mapping: prefix (an address or a prefix)
//	        med: 50                #   and any attribute key of defaults
//	        communities: [no-export]
//	  6695eb01-f6a4-8304-79aa-97f2502e1940:   # ...or a domain UUID
//	    ips: [198.51.100.7]
//
// # Attributes
//
// Each IP's attributes are resolved from three levels: the IP's own, its
// entry's, and the file's defaults. For med, local-pref, as-path-prepend and
// next-hop the strongest level that gives the key wins (IP over entry over
// defaults). Communities and large communities add up: an IP carries the
// union of the three levels' lists, sorted and without duplicates (see
// Route.Normalize). A next hop must be of the same address family as the
// prefix it is used for; a mismatch is reported at the IP, saying where the
// next hop comes from. Next hops must be unicast addresses, like the IPs.
//
// # Entries
//
// An entry's key is a libvirt domain name, or a domain UUID in the 8-4-4-4-12
// hexadecimal form (any case; it is kept in lower case). A key that has the
// form of a UUID is a UUID. Lookup matches:
//
//   - a UUID key: the domain with that UUID, whatever its name;
//   - a name key with a uuid pin: the domain with that name and that UUID
//     only, so that a renamed or forged domain cannot take the IPs;
//   - a name key without pin: the domain with that name.
//
// A UUID stands for one entry: a UUID used as a key and as a pin, or as the
// pin of two entries, is an error, like a key defined twice. A uuid pin on an
// entry keyed by UUID is an error.
//
// # Validation
//
// Loading is strict and reports every problem it finds, not only the first,
// each as "file:line: problem" (an [Error]; all of them in an [ErrorList]
// sorted by file and line): a YAML syntax error (yaml.v3 gives the line),
// an empty file, a missing or unsupported version, an unknown key at any
// level, a duplicate key, a value of the wrong type or out of range, an
// entry without IPs, an invalid address or prefix, a prefix with host bits
// set, a reserved address (unspecified, loopback, link-local, multicast,
// IPv4 limited broadcast, IPv4-mapped IPv6, or with an IPv6 zone; a prefix
// must not contain any), an entry defined twice (in one file or across
// files), and one IP mapped twice: the same prefix in two entries or twice in
// one, or a prefix inside another (a /28 holding another entry's /32 maps
// that IP twice). A problem that spans two places names both, as in
//
//	b.yaml:7: vm "web-01" is already defined at a.yaml:3
//
// YAML anchors, aliases, merge keys and multi-document files are not
// accepted.
//
// # Health checks and anycast
//
// The key health, in defaults, in an entry or in an item of ips (the
// strongest level given wins whole; levels do not merge), makes the routes
// follow the VM's health (the daemon's internal/health runs the checks):
//
//	health:
//	  initial: down                # down (default) or up: before the checks passed or failed
//	  on-failure: withdraw         # withdraw (default) or depreference, with:
//	  depreference: {communities: ["65001:666"], med: 1000, as-path-prepend: 2}
//	  checks:                      # at least one; every one must be healthy
//	    - type: http               # agent, tcp, http or exec
//	      name: web                # optional, default the type; unique in the list
//	      url: "http://{ip}/health"   # http: http or https; {ip} is the IP checked
//	      status: 200              # http, default 200
//	      body: ready              # http, optional substring of the body
//	      interval: 1s             # 100ms..1h, default 5s
//	      timeout: 500ms           # at most the interval, default 2s (or the interval)
//	      rise: 2                  # 1..100, default 3
//	      fall: 3                  # 1..100, default 3
//	      maintenance: /run/x      # optional absolute path: the check fails while it exists
//	    - {type: tcp, address: "{ip}:22"}             # tcp: host:port, the host an address or {ip}
//	    - {type: exec, command: [/usr/local/bin/check, --web]}   # exec: absolute path first
//
// A key of another type's check (url on a tcp check) is an error. An item
// of ips may say anycast: true: several entries may then map that same
// prefix (an anycast IP served by several VMs). Two entries mapping one
// prefix without it is an error as before, and one claim with anycast and
// one without is an error naming both places. An anycast prefix inside
// another mapped prefix still overlaps it. VM.Health and VM.Anycast give
// what an entry says; LookupVM gives the entry of a domain.
//
// # Metadata in the domain
//
// The IPs of a VM can also come with the VM: ParseMetadata reads virtbgp's
// element in a libvirt domain's metadata (namespace MetadataNS), which
// holds what an entry of a mapping file holds and resolves with the same
// rules, and ParseNova reads the ports and IPs that OpenStack Nova writes
// (namespace NovaNS), which NovaInstance.Routes turns into routes with the
// caller's attributes. Both are strict, and report every problem with its
// line and column (a MetadataErrorList). Allow is what the operator lets
// such a source claim: the routes outside its pools are refused, as
// Refusal values. The element's <health> has the health key's vocabulary
// and rules (Metadata.Health); HealthTrust is what the operator lets its
// checks be (no exec, no maintenance file, targets on {ip} only, bounded),
// and refuses the other routes the same way. docs/metadata.md describes
// the element.
//
// # Use
//
// A [Mapping] is immutable once loaded and safe for concurrent use. Lookup
// gives a domain's routes, Owner the entry that maps a prefix, VMs every
// entry, and Diff what changed between two mappings. Load handles files of
// hundreds of thousands of IPs: big files are parsed in chunks, and the
// checks across entries sort instead of comparing pairs.
package mapping
