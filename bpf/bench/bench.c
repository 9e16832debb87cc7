//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The load-test harness's own XDP programs (xdpsec bench, internal/bench): not part of the card.
 *
 * bench_gen   runs under BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on a host's veth: every run
 *             rewrites the template frame (an IPv4 UDP packet) into the next packet of the workload (its
 *             flow and, for IMIX, its size) and transmits it (XDP_TX) towards the first gateway.
 * bench_sink  sits on the receiving host's veth: it counts and drops the generator's UDP packets (and
 *             their fragments: packets and IP bytes) and passes everything else (the latency probes,
 *             ARP, neighbour discovery) to the stack. What the malformed-traffic storm could leak
 *             through a gateway (UDP to the storm's port, ESP) it counts apart and drops.
 * bench_fwd   is the bare AF_XDP forwarder's card: every IP packet but ICMPv6 goes to the socket of its
 *             receive queue; ARP and ICMPv6 (neighbour discovery) go to the kernel. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char __license[] SEC("license") = "Dual BSD/GPL";

/* bench_gen's workload, set before loading. */
volatile const __u32 flows_mask = 0;  /* flows - 1, flows a power of two */
volatile const __u32 flow_in_dport = 0; /* 1: the flow index goes into the ports (one policy per flow), see below */
volatile const __u16 port_base = 1024; /* first source (or destination) port of the flows */
volatile const __u32 imix = 0;        /* 1: frame sizes 60/590/1514 (64/594/1518 with FCS) in 7:4:1 */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} gen_seq SEC(".maps");

/* The IMIX pattern: 12 frames, 7 short, 4 medium (positions 1, 4, 8 and 10: the bits of IMIX_MEDIUM),
 * 1 long (position 6), spread so that bursts stay mixed. Bits rather than a table: the verifier
 * cannot bound n % 12 as an index into a map value. */
#define IMIX_MEDIUM 0x512
#define IMIX_LONG 6

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int bench_gen(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *seq = bpf_map_lookup_elem(&gen_seq, &zero);
	if (!seq)
		return XDP_ABORTED;
	__u64 n = (*seq)++;
	__u32 flow = (__u32)n & flows_mask;

	if (imix) {
		/* The template is the longest frame; shorten it to this packet's size. */
		__u32 i = (__u32)(n % 12);
		__u32 want = 60;
		if ((IMIX_MEDIUM >> i) & 1)
			want = 590;
		if (i == IMIX_LONG)
			want = 1514;
		__u32 have = ctx->data_end - ctx->data;
		if (want < have && bpf_xdp_adjust_tail(ctx, (int)want - (int)have))
			return XDP_ABORTED;
	}
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return XDP_ABORTED;
	__u16 iplen = (__u16)(end - (void *)ip);
	ip->tot_len = bpf_htons(iplen);
	udp->len = bpf_htons(iplen - sizeof(*ip));
	udp->check = 0;
	if (flow_in_dport) {
		/* 32,768 destination ports from port_base, then the next source port from 1. */
		udp->dest = bpf_htons(port_base + (flow & 0x7fff));
		udp->source = bpf_htons(1 + (flow >> 15));
	} else {
		/* Up to 32,768 source ports per source address, then the next address. */
		udp->source = bpf_htons(port_base + (flow & 0x7fff));
		ip->saddr = bpf_htonl(0xc6120120 + (flow >> 15)); /* 198.18.1.32 + */
	}
	ip->check = 0;
	__u32 sum = 0;
	__u16 *w = (__u16 *)ip;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	ip->check = csum_fold(sum);
	return XDP_TX;
}

/* bench_sink: the port the latency probes use (passed to the stack, not counted), and the port of the
 * storm's inner packets (counted in SINK_STORM, like any ESP that reaches the host). */
volatile const __u16 probe_port = 7777;
volatile const __u16 storm_port = 7779;

enum { SINK_GEN, SINK_STORM, SINK_SLOTS };

struct sink_count {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct sink_count);
	__uint(max_entries, SINK_SLOTS);
} sink_counts SEC(".maps");

static __always_inline int sink_storm(__u32 iplen)
{
	__u32 slot = SINK_STORM;
	struct sink_count *c = bpf_map_lookup_elem(&sink_counts, &slot);
	if (c) {
		c->packets++;
		c->bytes += iplen;
	}
	return XDP_DROP;
}

SEC("xdp")
int bench_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	struct udphdr *udp;
	__u32 iplen;
	__u32 first = 1; /* a whole packet or its first fragment: counts as a packet */
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl != 5)
			return XDP_PASS;
		iplen = bpf_ntohs(ip->tot_len);
		if (ip->protocol == IPPROTO_ESP)
			return sink_storm(iplen);
		if (ip->frag_off & bpf_htons(0x1fff)) {
			/* A later fragment of a packet a tunnel split (IMIX's 1,500-byte packets): only
			 * the generator's traffic is fragmented here. */
			if (ip->protocol != IPPROTO_UDP)
				return XDP_PASS;
			first = 0;
			udp = 0;
		} else {
			if (ip->protocol != IPPROTO_UDP)
				return XDP_PASS;
			udp = (void *)(ip + 1);
		}
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		iplen = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		if (ip6->nexthdr == IPPROTO_ESP)
			return sink_storm(iplen);
		if (ip6->nexthdr != IPPROTO_UDP)
			return XDP_PASS;
		udp = (void *)(ip6 + 1);
	} else {
		return XDP_PASS;
	}
	if (udp) {
		if ((void *)(udp + 1) > end || udp->dest == bpf_htons(probe_port))
			return XDP_PASS;
		if (udp->dest == bpf_htons(storm_port))
			return sink_storm(iplen);
	}
	__u32 slot = SINK_GEN;
	struct sink_count *c = bpf_map_lookup_elem(&sink_counts, &slot);
	if (c) {
		c->packets += first;
		c->bytes += iplen;
	}
	return XDP_DROP;
}

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__type(key, __u32); /* rx queue index */
	__type(value, __u32);
	__uint(max_entries, 64);
} fwd_xsks SEC(".maps");

SEC("xdp")
int bench_fwd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end || ip6->nexthdr == IPPROTO_ICMPV6)
			return XDP_PASS;
	} else if (eth->h_proto != bpf_htons(ETH_P_IP)) {
		return XDP_PASS;
	}
	return bpf_redirect_map(&fwd_xsks, ctx->rx_queue_index, XDP_PASS);
}
