// Package config loads and validates the virtbgp daemon configuration.
//
// The configuration is one YAML file, usually /etc/virtbgp/virtbgp.yaml.
// Loading is strict: an unknown key at any level, a duplicate key, a value of
// the wrong type or out of range, a missing required key or an unreadable
// password file is an error, and every such problem in the file is reported,
// not only the first, each as "file:line: problem", sorted by line (see
// [fileerr.ErrorList]). A missing required key is reported at the line of
// the mapping that lacks it, or at line 1 for a top-level key. YAML anchors,
// aliases and merge keys are not accepted, nor is more than one document.
//
// # Format (version 1)
//
// Every key, with its default or the values it accepts:
//
//	version: 1                       # required, must be 1
//	libvirt:
//	  uri: qemu:///system            # default qemu:///system
//	bgp:
//	  asn: 65001                     # required, 1..4294967295
//	  router-id: 192.0.2.1           # required, an IPv4 address other than 0.0.0.0
//	  listen-port: 179               # 0..65535; omitted or 0: no listener, all sessions are active
//	  graceful-restart:              # RFC 4724: when the session ends without a Hard Reset
//	                                 # (virtbgp restarted or dead), helpers keep its routes
//	    enabled: true                # default true
//	    restart-time: 1s             # default 1s; whole seconds, 1s..4095s. How long helpers keep
//	                                 # the routes as ordinary (stale) paths. 1s is the least GoBGP
//	                                 # can announce (0 would announce the hold time)
//	    long-lived-stale-time: 3600s # default 3600s (BIRD's default for its own long lived stale
//	                                 # time); 0 off; whole seconds, up to 16777215s. RFC 9494 LLGR:
//	                                 # after restart-time, helpers that do LLGR keep the routes
//	                                 # this long marked LLGR_STALE: they forward while no other
//	                                 # path exists and lose to any fresh one at once
//	    notification: true           # default true; RFC 8538 N bit: where the peer sets it too, a
//	                                 # hold-timer expiry or a NOTIFICATION other than a Hard Reset
//	                                 # also leaves the routes stale at the peer; removing a peer or
//	                                 # stopping the speaker sends a Hard Reset (routes withdrawn)
//	  peers:                         # default none
//	    - address: 198.18.0.1        # required, a unicast IP address, unique among peers
//	      # interface: eth1          # BGP unnumbered instead of address: the session runs over
//	                                 # eth1's IPv6 link-local addresses with its one link-local
//	                                 # neighbour; families default to [ipv4, ipv6] (IPv4 routes
//	                                 # with the link-local next hop, RFC 8950); virtbgp sends
//	                                 # router advertisements (lifetime 0) on eth1 so that the
//	                                 # router learns this host's link-local address; not with
//	                                 # local-address, multihop-ttl, next-hop-ipv4/-ipv6
//	      port: 179                  # default 179; 1..65535
//	      asn: 65000                 # required, 1..4294967295; equal to bgp.asn means iBGP
//	      password: secret           # TCP MD5 password, at most 80 bytes; or:
//	      password-file: tor1.pw     # a file holding the password, read at load time,
//	                                 # surrounding white space trimmed; a relative path is
//	                                 # relative to the directory of this file; not with password
//	      passive: false             # default false; true needs bgp.listen-port
//	      hold-time: 9s              # default 9s (FRR's datacenter profile); 0 (no keepalives)
//	                                 # or whole seconds, 3s..65535s
//	      keepalive: 3s              # default hold-time/3 rounded down to whole seconds;
//	                                 # whole seconds, at least 1s and less than hold-time
//	                                 # (unused when hold-time is 0)
//	      multihop-ttl: 2            # default 0: directly connected; 0..255
//	      local-address: 198.18.0.2  # default: chosen by the kernel; same family as address
//	      families: [ipv4]           # default: the address's family; ipv4 and/or ipv6, no duplicates
//	      next-hop-ipv6: 2001:db8::2 # only on an IPv4 session: next hop of its IPv6 routes with next
//	                                 # hop self; global IPv6. Default: the interface facing the peer's
//	      next-hop-ipv4: 192.0.2.2   # only on an IPv6 session: the same for IPv4 routes
//	      export:                    # the routes sent to this peer only (a change resets no session)
//	        communities: ["65001:1"] # added; ASN:value or no-export, no-advertise, blackhole, graceful-shutdown
//	        large-communities: ["65001:0:1"]  # added; GA:LD1:LD2
//	        as-path-prepend: 0       # 0..10 more times the local AS
//	        med: 10                  # replaces the MED; 0..4294967295
//	        families: [ipv4, ipv6]   # only these families (default: all); not empty
//	        prefixes: [192.0.2.0/24] # allow-list: only routes within one of them; not empty, no host bits
//	      receive-limit: 1000        # default; 0..4294967295, 0 none: the most routes of a family the
//	                                 # peer should send (virtbgp imports none, but GoBGP keeps them all)
//	      receive-limit-action: warn # warn (default): a WARN once per session and the count in status;
//	                                 # restart: end the session with a Cease (max prefixes), which drops them;
//	                                 # it comes back and ends again while the peer keeps sending them
//	mapping:
//	  path: mapping.yaml             # the VM -> IP mapping, a YAML file or a directory of *.yaml;
//	                                 # relative to the directory of this file; required unless
//	                                 # metadata or nova is enabled (then omitted: no file)
//	  watch: true                    # default; reload when the mapping changes (debounced), as SIGHUP does
//	  metadata:                      # virtbgp's element in each domain's live metadata (docs/metadata.md)
//	    enabled: false               # default false
//	    allowed-prefixes: [192.0.2.0/24]   # required when enabled: every claim must lie inside one;
//	                                 # each /16 (IPv4) or /32 (IPv6) or longer, none inside another
//	    min-prefix-length: {ipv4: 32, ipv6: 128}  # default host routes only; ipv4 16..32, ipv6 32..128
//	    allowed-next-hops: []        # default none: only next hop self; else prefixes an explicit
//	                                 # next hop must lie in
//	    defaults:                    # attributes below the element's own (default none)
//	      communities: ["65001:200"] # also large-communities, med, local-pref,
//	                                 # as-path-prepend (0..16), next-hop (self or an address)
//	    health:                      # what the element's health checks may be (docs/metadata.md)
//	      types: [agent, tcp, http]  # default all three; a subset narrows; exec is never allowed
//	      min-interval: 1s           # default 1s; the shortest interval of an element's check
//	      max-checks: 8              # default 8 (1..64): probes per domain, each check once per IP
//	      defaults:                  # the operator's checks of the IPs the element gives none
//	        checks: [{type: agent}]  # (trusted; the mapping file's health key); default none
//	  nova:                          # OpenStack Nova's <nova:instance> ports (Nova 23+)
//	    enabled: false               # default false
//	    ip-types: [fixed]            # default [fixed]; fixed and/or floating
//	    allowed-prefixes: [198.51.100.0/24]  # required when enabled, as metadata's; host routes only
//	    allowed-next-hops: []        # as metadata's
//	    attributes: {med: 10}        # the attributes of every route, keys as metadata.defaults
//	    health:                      # the operator's checks of every route (the mapping file's
//	      checks: [{type: agent}]    # health key); default none: Nova's element carries none
//	status:
//	  listen: 127.0.0.1:9479         # host:port of the HTTP status endpoint; omitted or "": disabled
//	routes:                          # what any route of any source may be (mapping files, metadata, Nova, API)
//	  min-prefix-length: {ipv4: 24, ipv6: 48}  # default; ipv4 16..32, ipv6 32..128: shorter prefixes
//	                                 # in a mapping are errors at their file:line; metadata's, Nova's
//	                                 # and the API's min-prefix-length may not be shorter
//	  allowed-prefixes: []           # default none: anywhere; else every route, and every source's
//	                                 # allowed-prefixes, must lie inside one (rules of metadata's)
//	policy:
//	  paused: withdraw               # withdraw (default) or keep: the routes of a domain
//	                                 # paused for any reason but an incoming migration
//	  standby-prepend: 3             # 2..16, default 3: extra AS-path prepends on the standby
//	                                 # route announced during an incoming migration
//	resync-interval: 5m              # default 5m; 0 disables the periodic resync; else at least 1s
//	state-dir: /var/lib/virtbgp      # default; what survives a restart (the drain state, the manual routes)
//	control:
//	  socket: /run/virtbgp/control.sock  # default; the HTTP API (docs/api/openapi.yaml), root only
//	  read-group: ""                 # default none; a group (looked up at load) whose members may use
//	                                 # the read calls: the socket is then 0660 of that group
//	api:
//	  allowed-prefixes: []           # default none (no manual route accepted); pools as in mapping.metadata
//	  min-prefix-length: {ipv4: 32, ipv6: 128}  # default host routes only; 16..32, 32..128
//	  allowed-next-hops: []          # default none: next hop self only
//	  write-rate: 10                 # default 10, 1..10000: write calls per second (burst as many)
//	  listen: ""                     # default none; host:port of the TCP listener, which needs
//	                                 # tokens, or tls with a client-ca
//	  tokens:                        # each: name (letters, digits, . _ -), file (the secret, at least
//	    - {name: ci, file: ci.token, access: read-write}   # 16 printable bytes, trimmed), access
//	                                 # read-only or read-write; only with listen
//	  tls: {cert: api.pem, key: api.key, client-ca: ca.pem}  # optional; client-ca makes a verified
//	                                 # client certificate read-write access
//	drain:
//	  graceful-shutdown-time: 60s    # default; 0..1h: how long `virtbgp drain` announces every route
//	                                 # with GRACEFUL_SHUTDOWN (65535:0) before withdrawing them all
//
// AS numbers 23456 (AS_TRANS), 65535 and 4294967295 are refused, as are a
// multicast or 240.0.0.0/4 router ID, link-local peer and local addresses
// and a password of more than one line. What is valid but probably wrong
// or unsafe is in [Config.Warnings]: an inline password, a password file
// readable by every user, status.listen beyond loopback, api.listen beyond
// loopback without tls, state-dir or control.socket under /tmp (the unit's
// PrivateTmp), a loopback peer, a session carrying the other address
// family.
//
// Durations are Go durations ("9s", "2m", "1h30m"); a bare 0 is zero.
//
// Where a domain's routes come from when several sources name it, and
// which claims are refused, is in docs/metadata.md ("Precedence").
//
// Only version, bgp (with its asn and router-id) and mapping (with its
// path, or metadata or nova enabled) are required; a minimal file is:
//
//	version: 1
//	bgp:
//	  asn: 65001
//	  router-id: 192.0.2.1
//	mapping:
//	  path: mapping.yaml
//
// [Load] reads a file; [Parse] reads bytes already in memory. Both return a
// [Config] with every default filled in.
package config
