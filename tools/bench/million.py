"""The million-message store side by side: one Telegram export of about a
million messages (tools/telegram-bigfile, the same folder the single-message
restores use), backed up by peerback, restic and Borg: full backup, unchanged
re-backup, and for peerback the bytes sent after one changed message, both
peak RSS and `host verify` after each step."""
import os
import shutil

import bench as b


def change_one_message(device):
    """Changes one message in place (a digit of its date_unixtime, so the
    file keeps its size and stays valid JSON); returns its item id."""
    chats = os.path.join(device, "chats")
    chat = sorted(os.listdir(chats))[0]
    path = os.path.join(chats, chat, "result.json")
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.readline()
        while True:
            at = f.tell()
            line = f.readline()
            if not line:
                raise b.BenchError("no message to change in %s" % path)
            k = line.find(b'"date_unixtime":"')
            if line.startswith(b'  {"id":') and k >= 0:
                k += len(b'"date_unixtime":"')
                d = line[k:k + 1]
                f.seek(at + k)
                f.write(b"1" if d != b"1" else b"2")
                mid = line[8:line.index(b",", 8)].decode()
                return "chat/%s/msg/%s" % (chat, mid)


def bench_million_peerback(args, src):
    root = os.path.join(args.work, "million-peerback")
    device = os.path.join(root, "device")
    env = b.PeerbackEnv(args.bin, root)
    r = {}
    env.start()
    try:
        phone = env.add_phone("phone")
        shutil.copytree(src, device)
        r["dataset_bytes"] = b.tree_bytes(device)
        b.log("million: peerback full backup")
        x = b.pb_backup(env, phone, device)
        r["backup_s"], r["backup_cpu_s"] = x["wall"], x["phone_cpu"] + x["host_cpu"]
        r["backup_mb_s"] = r["dataset_bytes"] / b.MB / x["wall"]
        r["backup_items"] = x["done"].get("items")
        rss = x["rss_kib"]
        b.host_verify(env, r, "million_backup")
        b.log("million: peerback re-backup, nothing changed")
        x = b.pb_backup(env, phone, device)
        r["rebackup_unchanged_s"] = x["wall"]
        r["rebackup_unchanged_bytes_sent"] = x["done"].get("bytes_sent")
        rss = max(rss, x["rss_kib"])
        b.host_verify(env, r, "million_unchanged")
        r["changed_message"] = change_one_message(device)
        b.log("million: peerback re-backup, one message changed (%s)" % r["changed_message"])
        x = b.pb_backup(env, phone, device)
        r["rebackup_one_message_s"] = x["wall"]
        r["rebackup_one_message_bytes_sent"] = x["done"].get("bytes_sent")
        rss = max(rss, x["rss_kib"])
        b.host_verify(env, r, "million_one_message")
        r["phone_peak_rss_mib"] = rss / 1024
        r["host_peak_rss_mib"] = env.host.hwm_kib() / 1024
    finally:
        env.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return r


def bench_million(args):
    """{"peerback": ..., "restic": ..., "borg": ...} for the message store."""
    src = b.message_device(args)
    out = {"peerback": bench_million_peerback(args, src)}
    if not args.skip_others:
        dbytes = out["peerback"]["dataset_bytes"]
        out["restic"] = b.bench_restic(args, "million", src, dbytes)
        out["borg"] = b.bench_borg(args, "million", src, dbytes)
    return out


def print_million(res):
    pb, rs, bg = res.get("peerback", {}), res.get("restic", {}), res.get("borg", {})
    rows = [("dataset", "dataset_bytes", True), ("full backup s", "backup_s", False),
            ("full backup MB/s", "backup_mb_s", True), ("full backup CPU s", "backup_cpu_s", False),
            ("re-backup unchanged s", "rebackup_unchanged_s", False),
            ("one message changed: sent", "rebackup_one_message_bytes_sent", False),
            ("one message changed: s", "rebackup_one_message_s", False),
            ("phone peak RSS MiB", "phone_peak_rss_mib", False), ("host peak RSS MiB", "host_peak_rss_mib", False)]
    head = "%-30s %12s %12s %12s %10s %10s" % ("million-message store", "peerback", "restic", "borg",
                                               "vs restic", "vs borg")
    print()
    print(head)
    print("-" * len(head))
    for label, key, hib in rows:
        a, c, d = pb.get(key), rs.get(key), bg.get(key)
        if a is None and c is None and d is None:
            continue
        plain = key in ("dataset_bytes",)
        print("%-30s %12s %12s %12s %10s %10s" % (label, b.fmt(a), b.fmt(c), b.fmt(d),
                                                  "" if plain or c is None else b.ratio(a, c, hib),
                                                  "" if plain or d is None else b.ratio(a, d, hib)))
    if pb.get("backup_items"):
        print("(%s items; restic/borg RSS: their one process)" % pb["backup_items"])
