#!/usr/bin/env python3
"""Sends malformed frames to the engine over a packet socket on the kernel side of its tap.

usage: badframes.py IFACE ENGINE_MAC ENGINE_IP KERNEL_IP
Prints one line per frame sent, ending with the drop counter the engine must count it
under: "sent NAME (LEN bytes): drop_REASON". The engine must drop and count each, and keep
going; ci/lab/malformed.sh checks its counters against these lines exactly.
"""
import socket
import struct
import sys


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, payload, proto=1, ihl=5, flags_frag=0x4000, total=None, bad_csum=False, options=b""):
    total = total if total is not None else 4 * ihl + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 0x1234, flags_frag, 64, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst)) + options
    c = csum(hdr)
    if bad_csum:
        c ^= 0x5A5A
    hdr = hdr[:10] + struct.pack("!H", c) + hdr[12:]
    return hdr + payload


def echo(ident=7, seq=1, data=b"migratory", bad=False):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + data
    c = csum(body) ^ (0x0F0F if bad else 0)
    return body[:2] + struct.pack("!H", c) + body[4:]


def ipv6_echo(dst_ip: bytes) -> bytes:
    """An IPv6 header from fe80::1 with an ICMPv6 echo request (checksum left zero: the
    engine drops IPv6 at the EtherType)."""
    icmp = struct.pack("!BBHHH", 128, 0, 0, 7, 1) + b"migratory"
    return struct.pack("!IHBB16s16s", 6 << 28, len(icmp), 58, 255,
                       bytes.fromhex("fe80" + "00" * 13 + "01"), dst_ip) + icmp


def main():
    iface, emac, eip, kip = sys.argv[1:5]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    my_mac = s.getsockname()[4]
    dst = bytes.fromhex(emac.replace(":", ""))

    def eth(payload, ethertype=0x0800, to=dst):
        return to + my_mac + struct.pack("!H", ethertype) + payload

    all_nodes_mac = bytes.fromhex("333300000001")  # RFC 2464 §7: ff02::1
    all_nodes_ip = bytes.fromhex("ff02" + "00" * 13 + "01")
    engine_ll_ip = bytes.fromhex("fe80" + "00" * 13 + "02")
    all_hosts_mac = bytes.fromhex("01005e000001")  # 224.0.0.1
    # name: (frame, the counter it must land in)
    frames = {
        "ipv4_truncated": (eth(ipv4(kip, eip, echo())[:12]), "drop_ipv4_truncated"),
        "ipv4_bad_checksum": (eth(ipv4(kip, eip, echo(), bad_csum=True)), "drop_ipv4_bad_checksum"),
        "icmp_bad_checksum": (eth(ipv4(kip, eip, echo(bad=True))), "drop_icmp_bad_checksum"),
        # A total length past the frame's end is a truncated IPv4 packet.
        "ipv4_total_len_past_frame": (eth(ipv4(kip, eip, echo(), total=1400)), "drop_ipv4_truncated"),
        "ipv4_options": (eth(ipv4(kip, eip, echo(), ihl=6, options=b"\x01\x01\x01\x00")), "drop_ipv4_options"),
        "ipv4_fragment": (eth(ipv4(kip, eip, echo(), flags_frag=0x2000)), "drop_ipv4_fragment"),
        "unknown_ethertype": (eth(b"\x00" * 46, ethertype=0x88B5), "drop_unknown_ethertype"),
        "arp_truncated": (eth(b"\x00\x01\x08\x00\x06\x04", ethertype=0x0806), "drop_arp_malformed"),
        "ip_protocol_udp": (eth(ipv4(kip, eip, b"\x00" * 16, proto=17)), "drop_ip_protocol_unsupported"),
        "ipv6_unicast": (eth(ipv6_echo(engine_ll_ip), ethertype=0x86DD), "drop_ipv6"),
        "ipv6_all_nodes": (eth(ipv6_echo(all_nodes_ip), ethertype=0x86DD, to=all_nodes_mac), "drop_ipv6"),
        "ipv4_multicast": (eth(ipv4(kip, "224.0.0.1", echo()), to=all_hosts_mac), "drop_eth_multicast"),
    }
    for name, (frame, counter) in frames.items():
        s.send(frame)  # unpadded: a tap carries short frames as they are
        print(f"sent {name} ({len(frame)} bytes): {counter}")


if __name__ == "__main__":
    main()
