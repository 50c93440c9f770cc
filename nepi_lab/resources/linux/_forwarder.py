"""The userspace tunnel forwarder: one process per tunnel end, run on the end's node.

This file is a program of its own (standard library only, Python 3.8 or later): the
tunnels of :mod:`.tunnels` write it into the run's folder on the node and start it as
``python3 _forwarder.py ...``; it is never imported by nepi_lab.

It attaches to an existing tap or tun device (``TUNSETIFF``; the ``linux::Tap`` or
``linux::Tun`` made it at deploy) and forwards between the device and the network:

``udp``  each frame (tap) or packet (tun) is the payload of one UDP datagram, as
         NEPI's ``tunchannel`` sent it; the socket is bound to ``--local`` on a port the
         kernel picks, printed as ``port N``; the peer's ``ADDRESS PORT`` is then read
         from ``--peer-file`` once it appears (both ends learn each other's port so).
``gre``  each frame or packet is carried in GRE (RFC 2784/2890, IP protocol 47) with
         the key ``--key``: protocol type 0x6558 (Ethernet, as a kernel ``gretap``) for
         a tap, 0x0800 or 0x86DD for a tun (as a kernel ``gre``), sent and received on
         a raw socket; the peer's address is ``--peer``.  It speaks the kernel's wire
         format, for kernels without GRE.

``--bwlimit`` caps what is sent to the network at that many bytes per second (NEPI's
``bwLimit``), by delaying packets.  It prints ``ready`` once forwarding, and exits on
SIGTERM or SIGINT, leaving the device to its owner.
"""

import argparse
import fcntl
import os
import select
import signal
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_TAP, IFF_NO_PI = 0x0001, 0x0002, 0x1000
GRE_KEY, GRE_CSUM, GRE_SEQ = 0x2000, 0x8000, 0x1000
ETH_P_TEB, ETH_P_IP, ETH_P_IPV6 = 0x6558, 0x0800, 0x86DD
MAX_FRAME = 65535 + 64


def attach(device, mode, pi):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    flags = IFF_TAP if mode == "tap" else IFF_TUN
    if not pi:
        flags |= IFF_NO_PI
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", device.encode(), flags))
    return fd


def wait_for_peer(path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                words = f.read().split()
            if len(words) == 2:
                return words[0], int(words[1])
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    sys.exit(f"no peer address in {path} after {timeout} s")


class Pacer:
    """Delays sends so that at most ``rate`` bytes per second leave (0: no limit)."""

    def __init__(self, rate):
        self.rate = rate
        self.next = time.monotonic()

    def wait(self, size):
        if not self.rate:
            return
        now = time.monotonic()
        if self.next > now:
            time.sleep(self.next - now)
            now = self.next
        self.next = now + size / self.rate


def gre_header(mode, key, payload):
    if mode == "tap":
        protocol = ETH_P_TEB
    else:
        protocol = ETH_P_IPV6 if payload[:1] and payload[0] >> 4 == 6 else ETH_P_IP
    return struct.pack("!HHI", GRE_KEY, protocol, key)


def gre_payload(packet, family, sender, peer, key):
    """The payload of a GRE packet from ``peer`` with ``key``, or None."""
    if family == socket.AF_INET6 and sender != peer:
        return None
    if family == socket.AF_INET:  # a raw IPv4 socket gives the IP header too
        if len(packet) < 20 or socket.inet_ntop(family, packet[12:16]) != peer:
            return None
        packet = packet[(packet[0] & 0x0F) * 4:]
    if len(packet) < 4:
        return None
    flags, _protocol = struct.unpack("!HH", packet[:4])
    offset = 4
    if flags & GRE_CSUM:
        offset += 4
    if flags & GRE_KEY:
        if len(packet) < offset + 4 or struct.unpack("!I", packet[offset:offset + 4])[0] != key:
            return None
        offset += 4
    elif key:
        return None
    if flags & GRE_SEQ:
        offset += 4
    return packet[offset:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", required=True)
    parser.add_argument("--mode", choices=("tap", "tun"), required=True)
    parser.add_argument("--encap", choices=("udp", "gre"), required=True)
    parser.add_argument("--local", required=True, help="address to send from")
    parser.add_argument("--peer", help="gre: the other end's address")
    parser.add_argument("--peer-file", help="udp: file that will hold 'ADDRESS PORT' of the other end")
    parser.add_argument("--key", type=int, default=0, help="gre: the key")
    parser.add_argument("--pi", action="store_true", help="the device carries a PI header")
    parser.add_argument("--bwlimit", type=int, default=0, help="bytes per second sent (0: no limit)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the peer file")
    args = parser.parse_args()

    def stop(signum, frame):
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    family = socket.AF_INET6 if ":" in args.local else socket.AF_INET
    tun = attach(args.device, args.mode, args.pi)
    if args.encap == "udp":
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((args.local, 0))
        print("port", sock.getsockname()[1], flush=True)
        peer = wait_for_peer(args.peer_file, args.timeout)
    else:
        sock = socket.socket(family, socket.SOCK_RAW, 47)
        sock.bind((args.local, 0))
        peer = (args.peer, 0)
    peer_address = socket.inet_ntop(family, socket.inet_pton(family, peer[0]))
    pacer = Pacer(args.bwlimit)
    print("ready", flush=True)
    while True:
        readable, _, _ = select.select([tun, sock], [], [])
        if tun in readable:
            data = os.read(tun, MAX_FRAME)
            if args.encap == "gre":
                data = gre_header(args.mode, args.key, data) + data
            pacer.wait(len(data))
            try:
                sock.sendto(data, peer)
            except OSError as exc:  # the network is unreachable for now: drop, as a link would
                print("send:", exc, file=sys.stderr, flush=True)
        if sock in readable:
            data, sender = sock.recvfrom(MAX_FRAME)
            if args.encap == "gre":
                data = gre_payload(data, family, sender[0], peer_address, args.key)
            elif sender[0] != peer_address or sender[1] != peer[1]:
                data = None
            if data:
                try:
                    os.write(tun, data)
                except OSError as exc:  # the device is down: drop
                    print("deliver:", exc, file=sys.stderr, flush=True)


if __name__ == "__main__":
    try:
        main()
    except OSError as exc:  # no device, no such address, no permission: one line, for the failure record
        sys.exit(f"forwarder: {exc}")
