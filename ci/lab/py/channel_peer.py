#!/usr/bin/env python3
"""A cluster member gone bad: speaks the engines' state channel (engine::channel) to an
engine over the kernel's TCP and sends what a broken or hostile peer would.

usage: channel_peer.py HOST:PORT NAME KEYFILE ATTEMPT

ATTEMPT is one of
  wrong-key   a hello sealed with another key (expect the link to be reset)
  replay      a proper handshake, then one heartbeat sent twice (reset after the second)
  truncated   a proper handshake, then a record cut short (expect an Abort back)
Prints one JSON line: what the engine sent back (message types) and whether it reset the
link. Wire form: magic MGCH, version 1, type, 2 reserved bytes, sequence number (u64 LE),
body length (u32 LE), body, HMAC-SHA256 of all before it; the hello's MAC is keyed by the
cluster key, later messages' by HMAC(key, "migratory channel 1 " | "i->r" or "r->i" |
initiator nonce | responder nonce)."""
import hashlib
import hmac
import json
import os
import socket
import struct
import sys
import time

MAGIC = b"MGCH"
KINDS = {1: "hello", 2: "prepare", 3: "record", 4: "adopted", 5: "release", 6: "abort",
         7: "frame", 8: "heartbeat", 9: "ready", 10: "closed", 11: "drained"}


def mac(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def seal(key, seq, kind, body):
    head = MAGIC + bytes([1, kind, 0, 0]) + struct.pack("<QI", seq, len(body))
    return head + body + mac(key, head + body)


def read_message(sock, buf):
    """One whole message from the socket: (kind, seq, body, signed bytes, tag), or None
    when the engine closed or reset the link."""
    while True:
        if len(buf) >= 20:
            n = struct.unpack("<I", buf[16:20])[0]
            if len(buf) >= 20 + n + 32:
                msg = bytes(buf[: 20 + n + 32])
                del buf[: 20 + n + 32]
                kind = msg[5]
                seq = struct.unpack("<Q", msg[8:16])[0]
                return kind, seq, msg[20 : 20 + n], msg[: 20 + n], msg[20 + n :]
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return None
        if not chunk:
            return None
        buf.extend(chunk)


def main():
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    host, port = sys.argv[1].rsplit(":", 1)
    name, attempt = sys.argv[2].encode(), sys.argv[4]
    with open(sys.argv[3], "rb") as f:
        key = f.read()
    if key.endswith(b"\n"):
        key = key[:-1]
    hello_key = os.urandom(32) if attempt == "wrong-key" else key
    nonce = os.urandom(16)
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(seal(hello_key, 0, 1, bytes([len(name)]) + name + nonce))
    buf = bytearray()
    answers = []
    got = read_message(sock, buf)
    if got is None or got[0] != 1:
        print(json.dumps({"attempt": attempt, "answers": answers, "reset": True, "hello": False}))
        return
    kind, seq, body, signed, tag = got
    if not hmac.compare_digest(mac(key, signed), tag):
        raise SystemExit("the engine's hello does not carry the cluster key's MAC")
    theirs = body[1 + body[0] : 1 + body[0] + 16]
    send_key = mac(key, b"migratory channel 1 i->r" + nonce + theirs)
    recv_key = mac(key, b"migratory channel 1 r->i" + nonce + theirs)
    if attempt == "replay":
        beat = seal(send_key, 1, 8, struct.pack("<Q", 1))
        sock.sendall(beat + beat)
    elif attempt == "truncated":
        # Authentic, but no record: the codec's magic and version, then nothing.
        sock.sendall(seal(send_key, 1, 3, struct.pack("<Q", 77) + bytes([0x4D, 0x47, 0x52, 1, 0, 0])))
    reset = False
    sock.settimeout(3)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        got = read_message(sock, buf)
        if got is None:
            reset = True
            break
        kind, seq, body, signed, tag = got
        if not hmac.compare_digest(mac(recv_key, signed), tag):
            raise SystemExit("a message from the engine with a bad MAC")
        if kind != 8:
            answers.append(KINDS.get(kind, kind))
        if attempt == "truncated" and answers:
            break
    sock.close()
    print(json.dumps({"attempt": attempt, "answers": answers, "reset": reset, "hello": True}))


if __name__ == "__main__":
    main()
