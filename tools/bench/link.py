"""The backup over a real link: the host (and the account service) in one
network namespace, the phone in another, joined by a veth pair shaped with
tbf to LINK_MBIT in both directions. The link's own rate is measured first
with a plain TCP transfer over the same veth (link_tcp_mb_s), so that the
backup's rate is given against what the link really carries. Needs root
(namespaces); otherwise the row is skipped and says why. The namespaces are
removed however the run ends."""
import os
import shutil
import subprocess
import time

import bench as b

LINK_MBIT = 400
NS_HOST, NS_PHONE = "pb-bench-host", "pb-bench-phone"
ADDR_HOST, ADDR_PHONE = "10.231.77.1", "10.231.77.2"
TCP_SECONDS = 4

# A plain TCP transfer: the receiver counts bytes until the sender closes;
# the sender writes 256 KiB blocks for TCP_SECONDS.
RECEIVER = r"""
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
print("ready", flush=True)
c, _ = s.accept(); n = 0; t0 = None
while True:
    d = c.recv(1 << 18)
    if not d: break
    if t0 is None: t0 = time.monotonic()
    n += len(d)
print(n, time.monotonic() - t0, flush=True)
"""
SENDER = r"""
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
buf = bytes(1 << 18); end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end: c.sendall(buf)
c.close()
"""


def sh(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ns_exec(ns):
    return ["ip", "netns", "exec", ns]


def teardown():
    for ns in (NS_HOST, NS_PHONE):
        subprocess.run(["ip", "netns", "del", ns], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def setup():
    teardown()
    sh("ip", "netns", "add", NS_HOST)
    sh("ip", "netns", "add", NS_PHONE)
    sh("ip", "link", "add", "pbb-h", "netns", NS_HOST, "type", "veth", "peer", "name", "pbb-p", "netns", NS_PHONE)
    for ns, dev, addr in ((NS_HOST, "pbb-h", ADDR_HOST), (NS_PHONE, "pbb-p", ADDR_PHONE)):
        sh(*ns_exec(ns), "ip", "link", "set", "lo", "up")
        sh(*ns_exec(ns), "ip", "addr", "add", addr + "/24", "dev", dev)
        sh(*ns_exec(ns), "ip", "link", "set", dev, "up")
        # burst: a few timer ticks of data at the rate, so that tbf itself
        # does not hold the rate below what it is set to.
        sh(*ns_exec(ns), "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", "%dmbit" % LINK_MBIT,
           "burst", "512k", "latency", "50ms")


def link_rate():
    """MB/s of one plain TCP stream from the phone's namespace to the host's."""
    port = 7461
    recv = subprocess.Popen(ns_exec(NS_HOST) + ["python3", "-c", RECEIVER, ADDR_HOST, str(port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        if recv.stdout.readline().strip() != "ready":
            raise b.BenchError("link: the TCP receiver did not start")
        subprocess.run(ns_exec(NS_PHONE) + ["python3", "-c", SENDER, ADDR_HOST, str(port), str(TCP_SECONDS)],
                       check=True)
        n, secs = recv.stdout.readline().split()
        return int(n) / b.MB / float(secs)
    finally:
        recv.wait(timeout=30)


class LinkEnv(b.PeerbackEnv):
    """PeerbackEnv with the account service and the host in NS_HOST and
    every phone command in NS_PHONE."""

    def peerback(self, home, *args, env=None):
        ns = NS_HOST if home == self.host_home else NS_PHONE
        return b.run(ns_exec(ns) + [self.pb, "--home", home] + list(args), env=env)

    def start(self, fresh=True):
        shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(self.root, exist_ok=True)
        imd = os.path.join(self.bin, "peerback-imd")
        b.run([imd, "--home", self.imd_home, "add-account", "bench"]).check("add-account")
        self.imd = b.Daemon(ns_exec(NS_HOST) + [imd, "--home", self.imd_home, "serve", "--listen",
                                                 "%s:7462" % ADDR_HOST, "--json"])
        _, ev = self.imd.wait_event(lambda o: "listen" in o and "key" in o, 20)
        self.imd_addr, self.imd_key = ev["listen"], ev["key"]
        self.login(self.host_home, "host")
        self.host = b.Daemon(ns_exec(NS_HOST) + [self.pb, "--home", self.host_home, "host", "--json", "--listen",
                                                  "0.0.0.0:7463", "--qr-ttl", "3600", "--max-failures", "100000"])
        self.host.wait_event(lambda o: o.get("event") == "listening", 20)
        self.host.wait_event(lambda o: o.get("event") == "advertise", 20)


def bench_link(args, data, dbytes):
    """Full backup of data over the shaped link: MB/s, % of the link's
    measured TCP rate, host verify after it."""
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None:
        b.log("link: skipped (network namespaces need root, ip and tc)")
        return {"link_skipped": "needs root, ip and tc for network namespaces"}
    r = {"link_tbf_mbit": LINK_MBIT}
    root = os.path.join(args.work, "peerback-link")
    env = None
    try:
        setup()
        r["link_tcp_mb_s"] = link_rate()
        b.log("link: tbf %d Mbit/s, one TCP stream carries %.1f MB/s" % (LINK_MBIT, r["link_tcp_mb_s"]))
        env = LinkEnv(args.bin, root)
        env.start()
        phone = env.add_phone("phone")
        b.log("link: full backup of %.0f MB from the phone's namespace" % (dbytes / b.MB))
        t0 = time.monotonic()
        x = b.pb_backup(env, phone, data)
        r["link_backup_s"] = time.monotonic() - t0
        r["link_backup_mb_s"] = dbytes / b.MB / r["link_backup_s"]
        r["link_backup_bytes_sent"] = x["done"].get("bytes_sent")
        r["link_backup_pct_of_link"] = 100 * r["link_backup_mb_s"] / r["link_tcp_mb_s"]
        r["link_backup_pct_of_tbf"] = 100 * r["link_backup_mb_s"] / (LINK_MBIT * 1e6 / 8 / b.MB)
        b.host_verify(env, r, "link_backup")
    finally:
        if env is not None:
            env.stop()
        teardown()
        shutil.rmtree(root, ignore_errors=True)
    return r
