#!/usr/bin/env bash
# Regenerates the saved tool outputs in this folder from real runs of ping, iperf3 and
# tcpdump.  Needs root (tcpdump, network namespaces) and sends traffic to loopback only:
# the "lost" and "unreachable" pings run in a fresh network namespace whose own lo
# drops or rejects them (nft), so nothing leaves the machine.
# The damaged samples (*_garbled*, *_truncated*) are made at the end from the real ones.
# The tests check values of the committed files: regenerate them together with the tests.
set -euo pipefail
cd "$(dirname "$0")"
PORT=${PORT:-5399}

ping -c 5 -i 0.2 -D -n 127.0.0.1 > ping_timestamps.txt
ping -c 3 -i 0.2 localhost > ping_hostname.txt
ping -c 3 -i 0.2 -n ::1 > ping_ipv6.txt
ping -c 3 -i 0.2 -q 127.0.0.1 > ping_quiet.txt

ns=nepi-lab-samples-$$
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip -n "$ns" link set lo up
ip netns exec "$ns" nft -f - <<'NFT'
table inet t {
    chain out { type filter hook output priority 0; icmp type echo-request ip daddr 127.0.0.2 drop;
                icmp type echo-request ip daddr 127.0.0.3 reject with icmp type host-unreachable; }
}
NFT
ip netns exec "$ns" ping -c 3 -i 0.3 -W 0.2 -D -O -n 127.0.0.2 > ping_no_answer.txt || true
ip netns exec "$ns" ping -c 3 -i 0.3 -D -n 127.0.0.3 > ping_unreachable.txt || true

# iperf3: JSON and text, TCP (2 streams), UDP, reverse; an error; the server's own report
iperf3 -s -1 -p "$PORT" -J > iperf3_tcp_server.json & sleep 0.5
iperf3 -c 127.0.0.1 -p "$PORT" -t 1 -i 0.5 -P 2 -b 50M -J > iperf3_tcp_client.json; wait
iperf3 -s -1 -p "$PORT" > /dev/null & sleep 0.5
iperf3 -c 127.0.0.1 -p "$PORT" -t 1 -i 0.5 -u -b 5M -J > iperf3_udp_client.json; wait
iperf3 -s -1 -p "$PORT" > /dev/null & sleep 0.5
iperf3 -c 127.0.0.1 -p "$PORT" -t 1 -i 0.5 -R -b 50M -J > iperf3_reverse_client.json; wait
iperf3 -s -1 -p "$PORT" > /dev/null & sleep 0.5
iperf3 -c 127.0.0.1 -p "$PORT" -t 1 -i 0.5 -P 2 -b 50M > iperf3_tcp_client.txt; wait
iperf3 -s -1 -p "$PORT" > /dev/null & sleep 0.5
iperf3 -c 127.0.0.1 -p "$PORT" -t 1 -i 0.5 -u -b 5M > iperf3_udp_client.txt; wait
iperf3 -c 127.0.0.1 -p "$PORT" -t 1 -J > iperf3_error.json || true

# tcpdump: on lo (Ethernet framing) and on any (Linux cooked v2), then its text output
tcpdump -i lo -s 128 -U --immediate-mode -n -w tcpdump_lo.pcap "icmp or icmp6 or port $PORT" 2>/dev/null & dump=$!
sleep 1
ping -c 3 -i 0.2 -n 127.0.0.1 > /dev/null; ping -c 2 -i 0.2 -n ::1 > /dev/null
iperf3 -s -1 -p "$PORT" > /dev/null & sleep 0.5
iperf3 -c 127.0.0.1 -p "$PORT" -t 1 -b 1M -l 1000 > /dev/null; wait %iperf3 2>/dev/null || true
iperf3 -s -1 -p "$PORT" > /dev/null & sleep 0.5
iperf3 -c 127.0.0.1 -p "$PORT" -t 1 -u -b 100K -l 500 > /dev/null; wait %iperf3 2>/dev/null || true
sleep 0.5; kill -TERM $dump; wait $dump || true
tcpdump -i any -s 128 -U --immediate-mode -n -w tcpdump_any.pcap icmp 2>/dev/null & dump=$!
sleep 1; ping -c 3 -i 0.2 -n 127.0.0.1 > /dev/null; sleep 0.5; kill -TERM $dump; wait $dump || true
chmod 644 ./*.pcap
tcpdump -r tcpdump_lo.pcap -n > tcpdump_lo.txt 2>/dev/null
tcpdump -r tcpdump_lo.pcap -n -tt > tcpdump_lo_epoch.txt 2>/dev/null
tcpdump -r tcpdump_any.pcap -n > tcpdump_any.txt 2>/dev/null

# damaged copies
head -c 300 ping_timestamps.txt > ping_truncated.txt
head -c 2500 iperf3_tcp_client.json > iperf3_truncated.json
size=$(stat -c %s tcpdump_lo.pcap); head -c $((size * 2 / 3)) tcpdump_lo.pcap > tcpdump_truncated.pcap
python3 - <<'PY'
lines = open("ping_timestamps.txt", "rb").read().split(b"\n")
# 0: header, 1-5: replies, 6: blank, 7-9: statistics
out = [lines[0], lines[1],
       lines[2].replace(b"time=", b"tim"),                   # a garbled field
       lines[2] + b" (DUP!)",                                # a duplicate reply
       b"\x00\xff\xfe garbage \x80 bytes from nowhere",      # binary junk
       lines[3][:40],                                        # cut in the middle
       b"hello world",
       lines[4].replace(b"icmp_seq=4", b"icmp_seq=four"),    # not a number
       lines[4] + b" trailing junk here",
       lines[5]] + lines[6:]
open("ping_garbled.txt", "wb").write(b"\n".join(out))
PY
