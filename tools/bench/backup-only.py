#!/usr/bin/env python3
"""One full backup (or N phones at once) of a dataset, nothing else: for
measuring the write path before and after a change, in the same minute.

  tools/bench/backup-only.py --bin build-release/tools --data DIR [--phones N]
      [--perf-phone FILE] [--perf-host FILE] [--verify]

Prints wall seconds, MB/s, phone and host CPU seconds and peak RSS."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--phones", type=int, default=1)
    ap.add_argument("--perf-phone", default=None, help="perf record the (first) phone into FILE")
    ap.add_argument("--perf-host", default=None, help="perf record the host into FILE")
    ap.add_argument("--verify", action="store_true", help="run host verify afterwards")
    args = ap.parse_args()
    binp = os.path.abspath(args.bin)
    data = os.path.abspath(args.data)
    dbytes = bench.tree_bytes(data)
    root = tempfile.mkdtemp(prefix="pb-backup-only-")
    env = bench.PeerbackEnv(binp, root)
    env.start()
    perf_host = None
    try:
        phones = [env.add_phone("phone-%02d" % i) for i in range(args.phones)]
        if args.perf_host:
            perf_host = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-g", "-o", args.perf_host,
                                          "-p", str(env.host.p.pid)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        cpu0 = env.host.cpu()
        t0 = time.monotonic()
        handles = []
        for i, p in enumerate(phones):
            argv = [env.pb, "--home", p, "--json", "backup", "--device", data]
            if i == 0 and args.perf_phone:
                argv = ["perf", "record", "-e", "cpu-clock", "-g", "-o", args.perf_phone, "--"] + argv
            handles.append(bench.spawn_measured(argv))
        results = [bench.finish_measured(h) for h in handles]
        wall = time.monotonic() - t0
        host_cpu = env.host.cpu() - cpu0
        for res in results:
            res.check("backup")
        phone_cpu = sum(r.cpu for r in results)
        print("phones %d  wall %.2f s  %.1f MB/s  phone cpu %.2f s  host cpu %.2f s  total cpu %.2f s  "
              "phone rss %.1f MiB  host rss %.1f MiB" %
              (args.phones, wall, args.phones * dbytes / bench.MB / wall, phone_cpu, host_cpu,
               phone_cpu + host_cpu, max(r.rss_kib for r in results) / 1024, env.host.hwm_kib() / 1024),
              flush=True)
        if perf_host is not None:
            perf_host.send_signal(2)
            perf_host.wait()
    finally:
        env.stop()
    if args.verify:
        res = env.peerback(env.host_home, "host", "verify")
        print("host verify: exit %d %s" % (res.rc, (res.out + res.err).strip()[-300:]))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
