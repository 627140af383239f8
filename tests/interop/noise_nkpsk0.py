#!/usr/bin/env python3
"""An independent Noise_NKpsk0_25519_ChaChaPoly_BLAKE2b initiator, written
from the Noise specification (revision 34) on Python's hashlib/hmac and the
`cryptography` package (OpenSSL), sharing no code with peerback.

  noise_nkpsk0.py --vector FILE   check it against the published NKpsk0 vector
  noise_nkpsk0.py --uri URI       pair-handshake with a peerback host, decrypt
                                  its first transport message (the account
                                  challenge) and print what it holds as JSON
"""
import base64
import hashlib
import hmac
import json
import socket
import struct
import sys
import urllib.parse

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

NAME = b"Noise_NKpsk0_25519_ChaChaPoly_BLAKE2b"


def hkdf(ck, ikm, n):
    t = hmac.new(ck, ikm, hashlib.blake2b).digest()
    o1 = hmac.new(t, b"\x01", hashlib.blake2b).digest()
    o2 = hmac.new(t, o1 + b"\x02", hashlib.blake2b).digest()
    if n == 2:
        return o1, o2
    return o1, o2, hmac.new(t, o2 + b"\x03", hashlib.blake2b).digest()


def pub(priv):
    return priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


class Cipher:
    def __init__(self, k=None):
        self.k, self.n = k, 0

    def _nonce(self):
        nonce = b"\0" * 4 + struct.pack("<Q", self.n)
        self.n += 1
        return nonce

    def enc(self, ad, pt):
        return pt if self.k is None else ChaCha20Poly1305(self.k).encrypt(self._nonce(), pt, ad)

    def dec(self, ad, ct):
        return ct if self.k is None else ChaCha20Poly1305(self.k).decrypt(self._nonce(), ct, ad)


class Symmetric:
    def __init__(self, name):
        self.h = name.ljust(64, b"\0") if len(name) <= 64 else hashlib.blake2b(name).digest()
        self.ck = self.h
        self.cs = Cipher()

    def mix_hash(self, data):
        self.h = hashlib.blake2b(self.h + data).digest()

    def mix_key(self, ikm):
        self.ck, k = hkdf(self.ck, ikm, 2)
        self.cs = Cipher(k[:32])

    def mix_key_and_hash(self, ikm):
        self.ck, th, k = hkdf(self.ck, ikm, 3)
        self.mix_hash(th)
        self.cs = Cipher(k[:32])

    def enc_and_hash(self, pt):
        ct = self.cs.enc(self.h, pt)
        self.mix_hash(ct)
        return ct

    def dec_and_hash(self, ct):
        pt = self.cs.dec(self.h, ct)
        self.mix_hash(ct)
        return pt

    def split(self):
        k1, k2 = hkdf(self.ck, b"", 2)
        return Cipher(k1[:32]), Cipher(k2[:32])


class Initiator:
    """NKpsk0: <- s ... -> psk, e, es  <- e, ee"""

    def __init__(self, prologue, rs, psk, e_priv=None):
        self.ss = Symmetric(NAME)
        self.ss.mix_hash(prologue)
        self.ss.mix_hash(rs)
        self.rs, self.psk = rs, psk
        self.e = X25519PrivateKey.from_private_bytes(e_priv) if e_priv else X25519PrivateKey.generate()

    def write1(self, payload):
        self.ss.mix_key_and_hash(self.psk)
        e = pub(self.e)
        self.ss.mix_hash(e)
        self.ss.mix_key(e)
        self.ss.mix_key(self.e.exchange(X25519PublicKey.from_public_bytes(self.rs)))
        return e + self.ss.enc_and_hash(payload)

    def read2(self, msg):
        re = msg[:32]
        self.ss.mix_hash(re)
        self.ss.mix_key(re)
        self.ss.mix_key(self.e.exchange(X25519PublicKey.from_public_bytes(re)))
        payload = self.ss.dec_and_hash(msg[32:])
        self.send, self.recv = self.ss.split()
        return payload


def check_vector(path):
    vectors = [v for v in json.load(open(path))["vectors"] if v["protocol_name"] == NAME.decode()]
    assert vectors, "no NKpsk0 vector in " + path
    for v in vectors:
        h = bytes.fromhex
        i = Initiator(h(v["init_prologue"]), h(v["init_remote_static"]), h(v["init_psks"][0]),
                      h(v["init_ephemeral"]))
        m = v["messages"]
        assert i.write1(h(m[0]["payload"])) == h(m[0]["ciphertext"]), "message 0 differs"
        assert i.read2(h(m[1]["ciphertext"])) == h(m[1]["payload"]), "message 1 differs"
        if "handshake_hash" in v:
            assert i.ss.h == h(v["handshake_hash"]), "handshake hash differs"
        for k, msg in enumerate(m[2:]):
            if k % 2 == 0:
                assert i.send.enc(b"", h(msg["payload"])) == h(msg["ciphertext"])
            else:
                assert i.recv.dec(b"", h(msg["ciphertext"])) == h(msg["payload"])
    print(json.dumps({"vectors": len(vectors), "passed": len(vectors)}))


def b64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def recv_frame(sock):
    (n,) = struct.unpack(">H", recv_exact(sock, 2))
    return recv_exact(sock, n)


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def fields(buf):
    """Minimal protobuf reader: {field number: value} for varint and bytes."""
    out, i = {}, 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            out[num], i = varint(buf, i)
        elif wire == 2:
            n, i = varint(buf, i)
            out[num], i = buf[i:i + n], i + n
        else:
            raise ValueError("unexpected wire type %d" % wire)
    return out


def pair(uri):
    q = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)
    k, s = b64(q["k"][0]), b64(q["s"][0])
    addr = q["a"][0].split(",")[0]
    host, port = addr.rsplit(":", 1)
    host = host.strip("[]")
    sock = socket.create_connection((host, int(port)), timeout=10)
    i = Initiator(b"peerback/1", k, s)
    m1 = i.write1(b"")
    sock.sendall(struct.pack(">H", len(m1)) + m1)
    i.read2(recv_frame(sock))
    env = fields(i.recv.dec(b"", recv_frame(sock)))
    challenge = fields(env[10])
    print(json.dumps({"version": env[1], "challenge_len": len(challenge[1]),
                      "min_version": challenge.get(2, 0), "max_version": challenge.get(3, 0)}))
    sock.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--vector":
        check_vector(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "--uri":
        pair(sys.argv[2])
    else:
        print(__doc__)
        sys.exit(2)
