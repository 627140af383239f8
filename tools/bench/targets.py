"""The speed targets, one row each: what was measured, the target, met or
NO (n/a when the run did not measure it, e.g. --quick or --skip-others).
The rows are kept in bench/results.json under "targets"."""
import bench as b

# The 16-phone aggregate the targets start from (MB/s, measured before the
# pipeline work, docs/BENCH.md).
CONCURRENT_BEFORE_MB_S = 80


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def _row(rows, what, value, target, ok):
    if value is None or ok is None:
        met = "n/a"
    else:
        met = "yes" if ok else "NO"
    rows.append({"target": what, "value": value, "goal": target, "met": met})


def _ratio(a, c):
    return None if a is None or c is None or c == 0 else a / c


def compute(results, million=None, link=None):
    """results: {size: {"peerback": ..., "restic": ..., "borg": ...}} of this
    run; the main dataset is the largest there."""
    main = results.get("standard") or results.get("small") or {}
    pb, rs, bg = main.get("peerback", {}), main.get("restic", {}), main.get("borg", {})
    rows = []

    def both(key, k, hib=True):
        a, c, d = pb.get(key), rs.get(key), bg.get(key)
        rr = _ratio(a, c) if hib else _ratio(c, a)
        rb = _ratio(a, d) if hib else _ratio(d, a)
        if rr is None or rb is None:
            return None, None
        return "%.2fx restic, %.2fx borg" % (rr, rb), rr >= k and rb >= k

    v, ok = both("backup_mb_s", 1.5)
    _row(rows, "full backup MB/s", v, ">= 1.5x restic and borg", ok)
    a, d = pb.get("backup_cpu_s"), bg.get("backup_cpu_s")
    _row(rows, "full backup CPU s", None if a is None or d is None else "%.1f vs borg %.1f" % (a, d),
         "<= borg", None if a is None or d is None else a <= d)
    a, c = pb.get("rebackup_unchanged_s"), rs.get("rebackup_unchanged_s")
    _row(rows, "unchanged re-backup s", None if a is None or c is None else "%.2f vs restic %.2f" % (a, c),
         "<= 0.5x restic", None if a is None or c is None else a <= 0.5 * c)
    f = pb.get("rebackup_1pct_sent_fraction")
    _row(rows, "1% changed: share sent", None if f is None else "%.2f%%" % (100 * f), "<= 2%",
         None if f is None else f <= 0.02)
    v, ok = both("restore_mb_s", 1.5)
    _row(rows, "full restore MB/s", v, ">= 1.5x restic and borg", ok)
    for label, key, lim in (("single restore p50 ms", "single_restore_ms_p50", 5),
                            ("single restore p99 ms", "single_restore_ms_p99", 10),
                            ("new phone single restore p50 ms", "newphone_single_restore_ms_p50", 5),
                            ("new phone single restore p99 ms", "newphone_single_restore_ms_p99", 10),
                            ("NFC fallback p50 ms", "nfc_fallback_ms_p50", 5)):
        a = pb.get(key)
        _row(rows, label, None if a is None else "%.1f" % a, "<= %d" % lim, None if a is None else a <= lim)

    m = million or {}
    mp, mr, mb = m.get("peerback", {}), m.get("restic", {}), m.get("borg", {})
    a, c, d = mp.get("backup_s"), mr.get("backup_s"), mb.get("backup_s")
    _row(rows, "million: full backup s",
         None if None in (a, c, d) else "%.1f (restic %.1f, borg %.1f)" % (a, c, d),
         "<= 2x restic and borg", None if None in (a, c, d) else a <= 2 * c and a <= 2 * d)
    a, c = mp.get("rebackup_unchanged_s"), mr.get("rebackup_unchanged_s")
    _row(rows, "million: unchanged re-backup s", None if None in (a, c) else "%.2f (restic %.2f)" % (a, c),
         "<= restic", None if None in (a, c) else a <= c)
    a = mp.get("rebackup_one_message_bytes_sent")
    _row(rows, "million: one message changed, sent", None if a is None else "%d bytes" % a, "< 1 MB",
         None if a is None else a < b.MB)

    for size, res in (("small", _get(results, "small", "peerback")),
                      ("standard", _get(results, "standard", "peerback")), ("million", mp or None)):
        for who, key, lim in (("phone", "phone_peak_rss_mib", 96), ("host", "host_peak_rss_mib", 48)):
            a = _get(res, key)
            _row(rows, "%s peak RSS MiB (%s)" % (who, size), None if a is None else "%.0f" % a, "<= %d" % lim,
                 None if a is None else a <= lim)

    lk = link or {}
    a = lk.get("link_backup_pct_of_link")
    _row(rows, "backup over a %s Mbit/s link" % lk.get("link_tbf_mbit", 400),
         None if a is None else "%.1f MB/s, %.0f%% of the link's %.1f MB/s" %
         (lk["link_backup_mb_s"], a, lk["link_tcp_mb_s"]), ">= 90% of the link", None if a is None else a >= 90)
    a = pb.get("concurrent16_mb_s")
    _row(rows, "16 phones aggregate MB/s", None if a is None else "%.0f" % a,
         ">= 2x %d" % CONCURRENT_BEFORE_MB_S, None if a is None else a >= 2 * CONCURRENT_BEFORE_MB_S)

    verified = {}
    for res in [_get(results, s, "peerback") for s in results] + [mp, lk]:
        verified.update(_get(res, "host_verify") or {})
    bad = sorted(k for k, v in verified.items() if not v)
    _row(rows, "host verify clean after every step",
         None if not verified else ("%d steps clean" % len(verified) if not bad else "NOT clean: " + ", ".join(bad)),
         "all clean", None if not verified else not bad)
    return rows


def print_targets(rows):
    head = "%-38s %-52s %-26s %s" % ("target", "measured", "goal", "met")
    print()
    print(head)
    print("-" * len(head))
    for x in rows:
        print("%-38s %-52s %-26s %s" % (x["target"], x["value"] if x["value"] is not None else "n/a", x["goal"],
                                        x["met"]))
