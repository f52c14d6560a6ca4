// Package lab builds virtbgp's real-world lab on one Linux machine: two KVM
// hypervisors with real live migration and two real top-of-rack routers,
// BIRD 2 and FRR, all in network namespaces.
//
//	         tor (namespace): a routed port per hypervisor, vA and vB
//	         BIRD 198.18.0.1 (.3 on vB)  fd00:198:18::1 (::3)  AS 65000, best paths -> kernel table 100
//	         FRR  198.18.0.2 (.4 on vB)  fd00:198:18::2 (::4)  AS 65000, best paths -> kernel main table
//	            /                       \
//	hvA (namespace)                  hvB (namespace)
//	198.18.0.11 fd00:198:18::11      198.18.0.12 fd00:198:18::12
//	libvirtd (own mount+UTS ns)      libvirtd (own mount+UTS ns)
//	virtbgp run, AS 65011            virtbgp run, AS 65012
//
// Each hypervisor's link is its own: the ToRs' addresses on it are
// point-to-point addresses with the host as peer ([Host.ToR] gives them),
// so the host's link going down is the ToRs' port going down, as on a
// layer-3 ToR. The tor namespace answers ARP and NDP for the other host
// and routes between the two (live migration). [Host.Fail] makes a host
// fail in each way a ToR can see ([Failures]): its link goes down, it
// falls silent (the sessions end by hold timer), its connections are
// reset, or its virtbgp is killed; [Host.Recover] brings it back.
//
// [Up] creates the namespaces (named with a per-lab prefix, "vb<pid>-<n>-"
// by default, so two labs never collide), starts one libvirtd per
// hypervisor (real QEMU driver; KVM guests when /dev/kvm works, else TCG)
// and BIRD and FRR in the tor namespace, and builds virtbgp from this
// module. Each libvirtd runs in a private mount namespace with the lab's
// directories over /etc/libvirt, /run/libvirt, /var/lib/libvirt,
// /var/log/libvirt and /var/cache/libvirt, its own hostname and host_uuid,
// a TCP listener on its address, and under a child subreaper
// (integration/cmd/vb-subreaper) that reaps QEMU at once, also across
// libvirtd restarts. Each ToR peers with both hypervisors over IPv4 (ipv4
// unicast) and IPv6 (ipv6 unicast), eBGP, passively, importing everything
// and exporting nothing, as a graceful-restart helper.
//
// [Host.StartVirtbgp] runs the real virtbgp binary in a hypervisor's
// namespace with a config the lab writes ([VirtbgpConfig]: the host's
// libvirtd, AS, router ID, the four ToR sessions, its own control socket and
// state directory, and the mapping and policy the caller chooses); it can be
// signalled, stopped and restarted by PID.
//
// Guests ([Guest]) are diskless 64 MiB, 1 vCPU domains that start in well
// under a second ([Host.CreateGuest], [Host.DefineGuest]); [Lab.Migrate]
// and [Lab.StartMigration] live-migrate them with virsh in every variant the
// tests need ([MigrateOptions]). A guest with [Guest.FillMiB] has memory
// worth copying, so that a migration can be slowed, aborted or switched to
// post-copy on purpose.
//
// The ToRs run the configs of the guide docs/tor as they are, so that what
// the guide tells operators is what every lab test runs: BIRD's config
// includes [DocsBIRDConf] of the source tree, FRR's bgpd.conf contains
// [DocsFRRConf] verbatim, and the lab adds only its own parts (logs, router
// IDs, kernel tables, one neighbor per hypervisor session). FRR's start
// fails if bgpd refuses a line ([FRR.ConfigErrors]). With FRR's
// maximum-paths, an anycast prefix of both hosts is an ECMP route in the
// main table; BIRD's kernel protocols install one best path.
//
// The ToRs are read with [BIRD.Routes] and [FRR.Routes], both returning a
// [RIB]: per prefix, every path with its next hop, AS path, MED, local
// preference, communities, large communities and whether it is the best
// path. Each ToR also installs its best paths into a kernel routing table of
// the tor namespace (BIRD into table [BIRDTable], FRR's zebra into the main
// table), so [Lab.MonitorRoutes] (ip -ts monitor route) timestamps every
// best-path change with microsecond resolution. BIRD also logs every route
// change with millisecond timestamps to [BIRD].Log.
//
// [Lab.Down] ends every process the lab started, by PID and start time
// (never by name), destroys the guests, kills whatever else is left in the
// lab's namespaces, deletes the namespaces (with their last process the
// private mounts go) and removes the lab directory. It is idempotent, and
// works from another process: the lab keeps its PIDs and names in a state
// file in its directory, which [Load] reads (make lab / make lab-down). [Up]
// also removes what a lab with the default prefix left behind when its
// process died without Down.
//
// The lab needs root, the Go toolchain and the Debian packages in
// [Packages]; [Up] says what is missing. Addresses are only ever configured
// inside the lab's namespaces. The environment variable VIRTBGP_LAB_TCG
// forces TCG guests, and VIRTBGP_LAB_VIRTBGP names a prebuilt virtbgp
// binary to use instead of building one.
package lab
