#!/usr/bin/env python3
"""Single-message restores by id, fresh commands, several builds side by
side: the message-store row of bench.py (the phone that made the backup and
a new phone, `restore --id ID` into a new directory) without the rest of the
bench, with each build's commands interleaved so that they run under the
same load. The store (the million-message device directory of bench.py,
backed up once) is kept under WORK/latency-store and reused.

    latency.py --bin DIR [--work DIR] [-n N] [--rt] PEERBACK...

DIR holds the release programs that run the host and the account service
(and build the store); each PEERBACK is a `peerback` program to time.
--rt runs the host's threads and the commands at SCHED_FIFO priority (root
only): the figures then leave out the waits for the CPU that other work on
a shared machine causes. Prints, per build and phone: wall p50, p99 and
minimum, and CPU milliseconds (user + system, wait4) per command, and the
host's CPU milliseconds per command (its /proc stat before and after all
of them). --host DIR runs the host (and the account service) from DIR
instead of --bin, to compare host builds with one phone build."""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402


def build_store(args, root):
    bargs = argparse.Namespace(work=args.work, messages=args.messages, bin=args.bin)
    device = b.message_device(bargs)
    ids = b.message_ids(device)
    env = b.PeerbackEnv(args.bin, root, b.free_port(), b.free_port())
    env.start(fresh=True)
    try:
        phone = env.add_phone("phone")
        b.log("latency: backing up %d messages" % len(ids))
        b.pb_backup(env, phone, device)
        res = env.peerback(env.host_home, "--json", "host", "devices").check("host devices")
        dev = [json.loads(x)["device"] for x in res.out.splitlines()
               if x.startswith("{") and json.loads(x).get("name") == "phone"][0]
        newphone = env.add_phone("newphone", key=False)
        with open(os.path.join(root, "ids.json"), "w") as f:
            json.dump(ids, f)
        with open(os.path.join(root, "state.json"), "w") as f:
            json.dump({"imd_port": env.imd_port, "host_port": env.host_port, "from": dev,
                       "phone": phone, "newphone": newphone}, f)
    finally:
        env.stop()


def host_cpu(pid):
    """The host's user + system CPU milliseconds so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", default=None)
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--messages", type=int, default=1000000)
    ap.add_argument("--rt", action="store_true")
    ap.add_argument("--host", default=None)
    ap.add_argument("peerback", nargs="+")
    args = ap.parse_args()
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args.bin = os.path.abspath(args.bin)
    args.work = os.path.abspath(args.work or os.path.join(top, "bench", "work"))
    root = os.path.join(args.work, "latency-store")
    if not os.path.exists(os.path.join(root, "state.json")):
        build_store(args, root)
    with open(os.path.join(root, "state.json")) as f:
        st = json.load(f)
    with open(os.path.join(root, "ids.json")) as f:
        ids = json.load(f)
    env = b.PeerbackEnv(os.path.abspath(args.host or args.bin), root, st["imd_port"], st["host_port"])
    env.start(fresh=False)
    rt = ["chrt", "-f", "50"] if args.rt else []
    try:
        if args.rt:
            for t in os.listdir("/proc/%d/task" % env.host.p.pid):
                subprocess.run(["chrt", "-f", "-p", "50", t], check=True, stdout=subprocess.DEVNULL)
        rng = random.Random(b.SEED)
        host_cpu0, ncmd = host_cpu(env.host.p.pid), 0
        out = {}
        to = os.path.join(root, "single")
        for who, home, extra in (("phone", st["phone"], []), ("new phone", st["newphone"], ["--from", st["from"]])):
            for _ in range(args.n):
                mid = ids[rng.randrange(len(ids))]
                for pb in args.peerback:
                    shutil.rmtree(to, ignore_errors=True)
                    x = b.run(rt + [os.path.abspath(pb), "--home", home, "--json", "restore", "--to", to,
                                    "--id", mid] + extra, env=b.measured_env(home)).check("restore --id")
                    ncmd += 1
                    w, c = out.setdefault((who, pb), ([], []))
                    w.append(x.wall * 1000)
                    c.append(x.cpu * 1000)
        for (who, pb), (w, c) in out.items():
            print("%-9s %-40s wall p50 %6.2f p99 %6.2f min %6.2f ms, CPU %5.2f ms" %
                  (who, pb, b.percentile(w, 50), b.percentile(w, 99), min(w), sum(c) / len(c)))
        print("host CPU %.3f ms per command (%d commands)" % ((host_cpu(env.host.p.pid) - host_cpu0) / ncmd, ncmd))
    finally:
        env.stop()


if __name__ == "__main__":
    main()
