#!/usr/bin/env python3
"""One message by id restored into a copy of the million-message device
directory (a folder that holds the chat: the restore merges the message
into the 352 MB chat file), several builds side by side: peak RSS, wall,
user and system seconds of each command, and whether the copy is then
byte-identical to the original (the message is already there). Uses the
store of latency.py (WORK/latency-store), which it must have built.

    merge-rss.py --bin DIR [--work DIR] [-n N] [--all] PEERBACK...

--all restores the whole snapshot (the chat merged with itself) instead
of one message."""
import argparse
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", default=None)
    ap.add_argument("-n", type=int, default=2)
    ap.add_argument("--all", action="store_true")
    ap.add_argument("peerback", nargs="+")
    args = ap.parse_args()
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    work = os.path.abspath(args.work or os.path.join(top, "bench", "work"))
    root = os.path.join(work, "latency-store")
    with open(os.path.join(root, "state.json")) as f:
        st = json.load(f)
    with open(os.path.join(root, "ids.json")) as f:
        ids = json.load(f)
    src = os.path.join(work, "data", "messages-seed1-%d" % len(ids))
    if not os.path.isdir(src):
        src = os.path.join(work, "data", "messages-seed1-1000000")
    to = os.path.join(root, "merge-target")
    env = b.PeerbackEnv(os.path.abspath(args.bin), root, st["imd_port"], st["host_port"])
    env.start(fresh=False)
    try:
        for k in range(args.n):
            for pb in args.peerback:
                shutil.rmtree(to, ignore_errors=True)
                shutil.copytree(src, to)
                cmd = ["/usr/bin/time", "-f", "%M KiB %e s wall %U s user %S s system", os.path.abspath(pb),
                       "--home", st["phone"], "--json", "restore", "--to", to]
                if not args.all:
                    cmd += ["--id", ids[(k + 1) * 777]]
                p = subprocess.run(cmd, env=b.measured_env(st["phone"]), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
                same = subprocess.run(["diff", "-rq", src, to], capture_output=True).returncode == 0
                print("%-40s rc %d %s, same files: %s" % (pb, p.returncode, p.stderr.strip().splitlines()[-1], same))
    finally:
        env.stop()
        shutil.rmtree(to, ignore_errors=True)


if __name__ == "__main__":
    main()
