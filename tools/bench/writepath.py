#!/usr/bin/env python3
"""The phone's write path on one device directory, peerback only: a full
backup, an unchanged re-backup and (--pct) a re-backup after the bench's
1% change (tools/bench/bench.py change_one_percent), each with wall and
CPU seconds (phone and host), bytes and chunks sent, the host's peak RSS
and minor page faults, and the host's store's bytes at the end. Every step runs as the bench runs it (no recovery
passphrase once the phone holds its key, so no Argon2id check; before
2026-11-30 22:20 UTC the full step paid it, about 0.45 phone CPU s and
the 260 MiB peak). --pct changes a copy of the directory, never the
directory itself. --perf FILE records the
phone's command of one step (--perf-step full|unchanged|pct), --perf-host
FILE the host during that step. A failed step prints, besides the phone's
error, the last lines the host and the account service wrote.

  tools/bench/writepath.py --bin build-release/tools --data DIR [--pct]
      [--perf FILE] [--perf-step STEP] [--perf-host FILE] [--call-graph dwarf]"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def minflt(pid):
    """Minor page faults of a process so far (/proc/PID/stat field 10)."""
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--pct", action="store_true", help="also a re-backup after the 1%% change (on a copy)")
    ap.add_argument("--perf", default=None)
    ap.add_argument("--perf-step", default="full")
    ap.add_argument("--perf-host", default=None, help="also record the host during --perf-step into this file")
    ap.add_argument("--call-graph", default=None, help="perf's --call-graph (e.g. dwarf) instead of -g")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="pb-writepath-")
    data = os.path.abspath(args.data)
    if args.pct:
        copy = os.path.join(root, "device")
        shutil.copytree(data, copy, symlinks=True)
        data = copy
    dbytes = bench.tree_bytes(data)
    env = bench.PeerbackEnv(os.path.abspath(args.bin), os.path.join(root, "env"))
    env.start()

    graph = ["--call-graph", args.call_graph] if args.call_graph else ["-g"]

    def step(name):
        argv = [env.pb, "--home", phone, "--json", "backup", "--device", data]
        if args.perf and name == args.perf_step:
            argv = ["perf", "record", "-e", "cpu-clock"] + graph + ["-o", args.perf, "--"] + argv
        hperf = None
        if args.perf_host and name == args.perf_step:
            hperf = subprocess.Popen(["perf", "record", "-e", "cpu-clock"] + graph + ["-o", args.perf_host, "-p",
                                      str(env.host.p.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu0 = env.host.cpu()
        flt0 = minflt(env.host.p.pid)
        # As the bench measures it: the phone holds its key (add_phone's key
        # setup), so no step pays the recovery passphrase's Argon2id check.
        res = bench.finish_measured(bench.spawn_measured(argv, env=bench.measured_env(phone)))
        if hperf is not None:
            hperf.send_signal(signal.SIGINT)
            hperf.wait(timeout=60)
        res.check("peerback backup (%s)" % name)
        host = env.host.cpu() - cpu0
        flt = minflt(env.host.p.pid) - flt0
        d = res.json_event("backup-done")
        sent = d.get("bytes_sent") or 0
        print("%-9s wall %6.2f s  cpu phone %5.2f + host %5.2f = %5.2f s  sent %11d B (%.2f%%)  chunks %6s  "
              "phone rss %.1f MiB, %d faults  host peak %.1f MiB, %d faults" % (name, res.wall, res.cpu, host,
                                                                                res.cpu + host, sent,
                                                                                100.0 * sent / dbytes,
                                                                                d.get("chunks_sent"),
                                                                                res.rss_kib / 1024, res.minflt,
                                                                                env.host.hwm_kib() / 1024, flt),
              flush=True)

    try:
        phone = env.add_phone("phone")
        step("full")
        step("unchanged")
        if args.pct:
            bench.change_one_percent(data)
            step("pct")
        print("host store %d B" % bench.tree_bytes(env.host_home), flush=True)
    except BaseException:
        # What the host and the account service said, for a failed step:
        # a failure under load is otherwise hard to reproduce.
        for name, d in (("host", env.host), ("imd", env.imd)):
            if d is not None:
                with d.cond:
                    lines = [("stdout", l) for l in d.lines[-20:]] + [("stderr", l) for l in d.errlines[-40:]]
                for where, line in lines:
                    print("%s %s: %s" % (name, where, line), file=sys.stderr)
        raise
    finally:
        env.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
