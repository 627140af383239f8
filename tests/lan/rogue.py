#!/usr/bin/env python3
"""A rogue on the LAN for the rediscovery scenario.

  rogue.py announce KEY ADDR PORT BCAST SECONDS   forged host announcements
  rogue.py listen ADDR PORT COUNTFILE             a TCP listener that counts
                                                  connections and resets them

announce sends, every 0.2 s, datagrams in the format of
agent/phone/discover.h naming the host's static KEY (base64url) at ADDR:PORT:
one with a junk certificate, and one carrying a real certificate captured
from the host's own announcements (when one was heard) with the addresses
rewritten, so its signature no longer holds.
"""
import socket
import struct
import sys
import time

ANNOUNCE_PORT = 7451


def forged(addr, port, cert):
    head = b"PBAN" + bytes([1]) + struct.pack(">QHB", int(time.time()), port, 1)
    body = head + socket.inet_aton(addr) + struct.pack(">H", len(cert)) + cert
    return body + bytes(64)


def announce(key, addr, port, bcast, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", ANNOUNCE_PORT))
    s.setblocking(False)
    junk = b"\x0a\x20" + key + bytes(30)
    captured = None
    sent = 0
    end = time.time() + seconds
    while time.time() < end:
        try:
            while True:
                data, _ = s.recvfrom(2048)
                n = data[15] if len(data) > 16 and data[:4] == b"PBAN" else 0
                off = 16 + 4 * n
                if n and len(data) > off + 2 and captured is None and key in data:
                    clen = struct.unpack(">H", data[off:off + 2])[0]
                    captured = data[off + 2:off + 2 + clen]
                    print("captured a real certificate", flush=True)
        except BlockingIOError:
            pass
        for cert in (junk, captured):
            if cert is not None:
                s.sendto(forged(addr, port, cert), (bcast, ANNOUNCE_PORT))
                sent += 1
        print("sent", sent, flush=True)
        time.sleep(0.2)


def listen(addr, port, countfile):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(16)
    n = 0
    with open(countfile, "w") as f:
        f.write("0\n")
    print("listening", flush=True)
    while True:
        c, peer = s.accept()
        n += 1
        with open(countfile, "w") as f:
            f.write("%d\n" % n)
        print("connection from", peer, flush=True)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()


def b64url(text):
    import base64
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


if __name__ == "__main__":
    if sys.argv[1] == "announce":
        announce(b64url(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5], float(sys.argv[6]))
    elif sys.argv[1] == "listen":
        listen(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit("usage: rogue.py announce|listen ...")
