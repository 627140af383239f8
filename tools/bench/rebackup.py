#!/usr/bin/env python3
"""Backup and re-backup figures of one device directory, peerback only:
full backup, unchanged re-backup, a re-backup after one chat message
changed, and single-message restores by id (fresh commands). Uses the
bench's own environment (account service, host, phone on loopback).

  tools/bench/rebackup.py --bin build-release/tools --data DIR [--singles N] [--restore] [--out FILE]

--restore also restores the full backup into a new folder, compares it
with the device directory (diff -r) and reports its figures.

The device directory is backed up where it is; the one changed message is
changed back at the end."""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def change_one_message(device):
    """Flips one character of the first message text of the largest chat;
    returns (path, offset, old byte) to undo it."""
    best = None
    chats = os.path.join(device, "chats")
    for chat in sorted(os.listdir(chats)):
        path = os.path.join(chats, chat, "result.json")
        if os.path.isfile(path) and (best is None or os.path.getsize(path) > os.path.getsize(best)):
            best = path
    with open(best, "r+b") as f:
        head = f.read(1 << 20)
        at = head.index(b'"messages"')
        while True:  # a text that begins with an ASCII letter
            at = head.index(b'"text":"', at) + 8
            if head[at:at + 1].isalpha():
                break
        old = head[at:at + 1]
        f.seek(at)
        f.write(b"Q" if old != b"Q" else b"R")
    return best, at, old


def undo(change):
    path, at, old = change
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(old)


# Once a phone has its key, the recovery passphrase in the environment
# makes every command check it against the wrapped key (a memory-hard
# hash: about 256 MiB and half a CPU second): the figures below are of
# the commands without it, as a phone runs them.
def quiet_env():
    e = bench.base_env()
    e.pop("PEERBACK_RECOVERY_PASSPHRASE", None)
    return e


def backup(env, phone, device, first=False):
    cpu0 = env.host.cpu()
    res = env.peerback(phone, "--json", "backup", "--device", device,
                       env=None if first else quiet_env()).check("peerback backup")
    return {"wall": res.wall, "phone_cpu": res.cpu, "host_cpu": env.host.cpu() - cpu0, "rss_kib": res.rss_kib,
            "done": res.json_event("backup-done")}


def restore_id(env, home, to, mid, first=False):
    res = env.peerback(home, "--json", "restore", "--to", to, "--id", mid,
                       env=None if first else quiet_env()).check("peerback restore")
    return {"wall": res.wall, "done": res.json_event("restore-done")}


def row(b):
    return {"wall_s": round(b["wall"], 3), "phone_cpu_s": round(b["phone_cpu"], 3),
            "host_cpu_s": round(b["host_cpu"], 3), "phone_rss_mib": round(b["rss_kib"] / 1024, 1),
            "items": b["done"].get("items"), "bytes_sent": b["done"].get("bytes_sent"),
            "files_read": b["done"].get("files_read"), "files_skipped": b["done"].get("files_skipped")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--singles", type=int, default=0)
    ap.add_argument("--restore", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--keep", action="store_true", help="leave the host running until Enter")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="pb-rebackup-", dir=os.path.join(os.path.dirname(args.data), ".."))
    env = bench.PeerbackEnv(os.path.abspath(args.bin), root)
    r = {"data": args.data}
    env.start()
    change = None
    try:
        phone = env.add_phone("phone")
        r["full"] = row(backup(env, phone, args.data, first=True))
        if args.restore:
            to = os.path.join(root, "restored")
            cpu0 = env.host.cpu()
            res = env.peerback(phone, "--json", "restore", "--to", to, env=quiet_env()).check("peerback restore")
            same = subprocess.run(["diff", "-r", "-q", args.data, to], capture_output=True).returncode == 0
            r["restore"] = {"wall_s": round(res.wall, 3), "phone_cpu_s": round(res.cpu, 3),
                            "host_cpu_s": round(env.host.cpu() - cpu0, 3),
                            "phone_rss_mib": round(res.rss_kib / 1024, 1), "identical": same}
            shutil.rmtree(to, ignore_errors=True)
        r["unchanged"] = row(backup(env, phone, args.data))
        change = change_one_message(args.data)
        r["one_message"] = row(backup(env, phone, args.data))
        if args.singles:
            ids = bench.message_ids(args.data)
            # This phone (its state knows every item), then a new phone of
            # the account (no state: the snapshot's id index).
            phone2 = env.add_phone("phone2")
            # The new phone's first restore unwraps the account's key with
            # the passphrase and keeps it.
            restore_id(env, phone2, os.path.join(root, "first"), ids[0], first=True)
            for key, home in (("single", phone), ("single_new_phone", phone2)):
                rng = random.Random(bench.SEED)
                times, lookups = [], {}
                for i in range(args.singles):
                    mid = ids[rng.randrange(len(ids))]
                    to = os.path.join(root, "single-%d" % i)
                    x = restore_id(env, home, to, mid)
                    times.append(x["wall"] * 1000)
                    how = x["done"].get("lookup", "?")
                    lookups[how] = lookups.get(how, 0) + 1
                    shutil.rmtree(to, ignore_errors=True)
                r[key + "_ms_p50"] = round(bench.percentile(times, 50), 2)
                r[key + "_ms_p99"] = round(bench.percentile(times, 99), 2)
                r[key + "_lookups"] = lookups
        r["host_rss_mib"] = round(env.host.hwm_kib() / 1024, 1)
        if args.keep:
            print("phone home: %s (host running; Enter stops it)" % phone, flush=True)
            sys.stdin.readline()
    finally:
        if change is not None:
            undo(change)
        env.stop()
        shutil.rmtree(root, ignore_errors=True)
    out = json.dumps(r, indent=1)
    print(out)
    if args.out:
        with open(args.out, "w") as f:
            f.write(out + "\n")


if __name__ == "__main__":
    main()
