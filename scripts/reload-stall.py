#!/usr/bin/env python3
"""Measure what a big mapping reload costs the daemon (issue 17, finding 6).

Runs `virtbgp run` (libvirt test:///default, no BGP peers, status endpoint
on), renames a big mapping into place (the watcher loads it), polls
/healthz every 20 ms meanwhile, and prints: how long /healthz failed or did
not answer at a stretch (the main loop's stall), the 503s, the peak RSS
(VmHWM) and the RSS 5 s after the reload ended (retained).

usage: reload-stall.py BINARY {bad100mb|vms1m}
"""
import os, re, signal, subprocess, sys, tempfile, time, urllib.request

binary, kind = sys.argv[1], sys.argv[2]
work = tempfile.mkdtemp(prefix="vb-stall-")
port = 19000 + os.getpid() % 1000
small = "version: 1\nvms:\n  test:\n    ips: [192.0.2.10]\n"
open(os.path.join(work, "mapping.yaml"), "w").write(small)
open(os.path.join(work, "virtbgp.yaml"), "w").write(f"""version: 1
libvirt: {{uri: "test:///default"}}
bgp: {{asn: 65001, router-id: 192.0.2.1, peers: []}}
mapping: {{path: mapping.yaml}}
status: {{listen: "127.0.0.1:{port}"}}
resync-interval: 0
state-dir: state
control: {{socket: control.sock}}
""")

big = os.path.join(work, ".mapping.yaml.new")
with open(big, "w") as f:
    f.write(small)
    if kind == "bad100mb":
        n = 0
        while f.tell() < 100 << 20:
            chunk = "".join(f"  vm{i:08d}:\n    ips: [10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}]\n" for i in range(n, n + 100000))
            f.write(chunk)
            n += 100000
        f.write("  broken:\n    ips: [not-an-address]\n")
    else:
        for s in range(0, 1000000, 100000):
            f.write("".join(f"  vm{i:07d}:\n    ips: [10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}]\n" for i in range(s, s + 100000)))
size = os.path.getsize(big)

log = open(os.path.join(work, "log"), "w")
p = subprocess.Popen([binary, "run", "--config", os.path.join(work, "virtbgp.yaml")], stdout=log, stderr=log)

def healthz(timeout=2.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return 0

def proc(field):
    for line in open(f"/proc/{p.pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024  # MiB
    return 0

try:
    deadline = time.time() + 30
    while healthz() != 200:
        if time.time() > deadline:
            sys.exit("daemon not healthy within 30s")
        time.sleep(0.1)
    rss0 = proc("VmRSS")
    os.rename(big, os.path.join(work, "mapping.yaml"))
    t0 = time.time()
    last_ok, worst, bad, done_at = t0, 0.0, 0, None
    while time.time() - t0 < 600:
        code = healthz()
        now = time.time()
        if code == 200:
            worst = max(worst, now - last_ok)
            last_ok = now
        else:
            bad += 1
        text = open(os.path.join(work, "log")).read()
        if done_at is None and re.search(r'msg="mapping reload(ed| rejected)"', text):
            done_at = now
        if done_at is not None and now - done_at > 5:
            break
        time.sleep(0.02)
    worst = max(worst, time.time() - last_ok)
    print(f"{kind}: {size / (1 << 20):.0f} MiB; reload took {((done_at or now) - t0):.1f} s; "
          f"longest /healthz gap {worst:.2f} s; /healthz failures {bad}; "
          f"RSS before {rss0} MiB, peak {proc('VmHWM')} MiB, 5 s after {proc('VmRSS')} MiB")
finally:
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    subprocess.run(["rm", "-rf", work])
