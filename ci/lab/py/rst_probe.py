#!/usr/bin/env python3
"""RST behaviour of a TCP server, seen from the kernel side of its link.

usage: rst_probe.py IFACE SERVER_MAC SERVER_IP CLIENT_IP OPEN_PORT CLOSED_PORT
Checks, printing one line each and exiting 1 on the first failure:
  1. a SYN to a closed port is refused (RST);
  2. a data segment to an open port with no connection gets a RST whose sequence number
     is the segment's acknowledgment number (RFC 9293 3.10.7.1);
  3. a connection reset by the client (SO_LINGER 0) is answered by nothing (checked by
     the caller through the engine's counters: the table empties).
"""
import os
import socket
import struct
import sys
import time


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_segment(src, dst, sport, dport, seq, ack, flags, payload=b""):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(hdr) + len(payload))
    c = csum(pseudo + hdr + payload)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload


def ipv4(src, dst, payload):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, 64, 6, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + payload


def main():
    iface, smac, sip, cip, open_port, closed_port = sys.argv[1:7]
    open_port, closed_port = int(open_port), int(closed_port)

    # 1. SYN to a closed port.
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((sip, closed_port))
        print("FAIL: connect to a closed port succeeded")
        return 1
    except ConnectionRefusedError:
        print(f"ok: SYN to closed port {closed_port} refused by RST")
    except OSError as e:
        print(f"FAIL: connect to a closed port: {e} (expected a RST)")
        return 1
    finally:
        s.close()

    # 2. Data to an open port without a connection, from a port the kernel does not use.
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    raw.bind((iface, 0))
    raw.settimeout(0.2)
    my_mac = raw.getsockname()[4]
    sport = 40000 + os.getpid() % 20000
    seq, ack = 0x11223344, 0x55667788
    seg = tcp_segment(cip, sip, sport, open_port, seq, ack, 0x18, b"hello, nobody")
    frame = bytes.fromhex(smac.replace(":", "")) + my_mac + b"\x08\x00" + ipv4(cip, sip, seg)
    raw.send(frame)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            pkt = raw.recv(2048)
        except socket.timeout:
            continue
        if len(pkt) < 54 or pkt[12:14] != b"\x08\x00" or pkt[23] != 6:
            continue
        ihl = (pkt[14] & 0xF) * 4
        t = pkt[14 + ihl:]
        sp, dp, rseq, rack, off, flags = struct.unpack("!HHIIBB", t[:14])
        if socket.inet_ntoa(pkt[26:30]) == sip and sp == open_port and dp == sport:
            if flags & 0x04 and rseq == ack:
                print(f"ok: data to port {open_port} with no connection answered by RST seq={rseq:#x}")
                break
            print(f"FAIL: reply flags={flags:#x} seq={rseq:#x}, expected RST with seq={ack:#x}")
            return 1
    else:
        print("FAIL: no RST for data to a non-existent connection")
        return 1

    # 3. A connection reset by the client.
    c = socket.create_connection((sip, open_port), timeout=3)
    c.sendall(b"ping")
    if c.recv(4) != b"ping":
        print("FAIL: echo before reset")
        return 1
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    print("ok: client connection reset with SO_LINGER 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
