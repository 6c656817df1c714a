#!/usr/bin/env python3
"""Who sent a download, from a capture on the client's side.

usage: pcap_owners.py CAPTURE.pcap SERVER_PORT NAME=MAC [NAME=MAC ...]

Reads a classic pcap (Ethernet, as tcpdump -w writes it) and prints one JSON object:
for each named sender (by source MAC address), the TCP payload bytes it sent from
SERVER_PORT (new bytes and retransmitted bytes apart, by sequence number), its first and
last data segment (seconds from the capture's first frame); the owners in the order they
took over; and `stall_ms`, for each change of owner, the time between the last data
segment of the one and the first of the next: the pause the client saw."""
import json
import struct
import sys


def frames(path):
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return
        magic = struct.unpack("<I", head[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            endian = "<"
        elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
            endian = ">"
        else:
            raise SystemExit(f"{path}: not a pcap file")
        nanos = magic in (0xA1B23C4D, 0x4D3CB2A1)
        linktype = struct.unpack(endian + "I", head[20:24])[0]
        if linktype != 1:
            raise SystemExit(f"{path}: link type {linktype}, wanted Ethernet (1)")
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            sec, frac, caplen, _ = struct.unpack(endian + "IIII", rec)
            data = f.read(caplen)
            if len(data) < caplen:
                return
            yield sec + frac / (1e9 if nanos else 1e6), data


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    path, port = sys.argv[1], int(sys.argv[2])
    names = {}
    for arg in sys.argv[3:]:
        name, _, mac = arg.partition("=")
        names[bytes.fromhex(mac.replace(":", ""))] = name
    senders = {}
    order = []
    t0 = None
    highest = None  # the highest sequence number sent so far (mod 2^32, by distance)
    for ts, f in frames(path):
        t0 = ts if t0 is None else t0
        if len(f) < 34 or f[12:14] != b"\x08\x00":
            continue
        ihl = (f[14] & 0x0F) * 4
        if f[23] != 6 or len(f) < 14 + ihl + 20:
            continue
        total = struct.unpack("!H", f[16:18])[0]
        tcp = 14 + ihl
        sport = struct.unpack("!H", f[tcp : tcp + 2])[0]
        if sport != port:
            continue
        seq = struct.unpack("!I", f[tcp + 4 : tcp + 8])[0]
        doff = (f[tcp + 12] >> 4) * 4
        payload = total - ihl - doff
        if payload <= 0:
            continue
        name = names.get(f[6:12], f[6:12].hex(":"))
        s = senders.setdefault(
            name, {"bytes": 0, "retransmitted": 0, "segments": 0, "first_s": ts - t0}
        )
        end = (seq + payload) & 0xFFFFFFFF
        if highest is None or ((end - highest) & 0xFFFFFFFF) < 0x80000000:
            new = payload if highest is None else min(payload, (end - highest) & 0xFFFFFFFF)
            highest = end
        else:
            new = 0
        s["bytes"] += new
        s["retransmitted"] += payload - new
        s["segments"] += 1
        s["last_s"] = ts - t0
        if not order or order[-1]["name"] != name:
            order.append({"name": name, "from_s": ts - t0, "to_s": ts - t0})
        order[-1]["to_s"] = ts - t0
    stalls = [
        round((b["from_s"] - a["to_s"]) * 1e3, 3) for a, b in zip(order, order[1:])
    ]
    print(json.dumps({"senders": senders, "owners": order, "stall_ms": stalls}))


if __name__ == "__main__":
    main()
