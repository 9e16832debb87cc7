/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Types shared by the card (XDP) and Go (through bpf2go -type): the metadata in front of each packet handed
 * to a worker, the offloaded SPD and SA tables, counters and ACQUIRE records. Every field is in host byte
 * order unless its comment says "network order". Changing a layout means bumping XDPSEC_META_VERSION (for
 * the metadata) or renaming the map (for tables): pinned maps of an older layout are refused on reopen. */
#ifndef XDPSEC_H
#define XDPSEC_H

#include <linux/types.h>

#define XDPSEC_META_MAGIC 0x5853 /* "XS" */
#define XDPSEC_META_VERSION 1

#define XDPSEC_NONE_U16 0xffff
#define XDPSEC_NONE_U32 0xffffffff

/* Bounds the parser accepts; deeper packets are counted and dropped. */
#define XDPSEC_MAX_IPV6_EXT 8  /* extension headers before the upper-layer header */
#define XDPSEC_MAX_L4_OFF 1024 /* offset of the L4 header from the start of the frame */

enum xdpsec_dir {
	XDPSEC_DIR_OUT = 0, /* protected side: outbound classification */
	XDPSEC_DIR_IN = 1,  /* wire side: inbound SA lookup and plaintext policy check */
};

enum xdpsec_action {
	XDPSEC_ACT_BYPASS = 0,
	XDPSEC_ACT_PROTECT = 1,
	XDPSEC_ACT_DISCARD = 2,
};

/* An SA's mode (struct xdpsec_sa.mode). 0 is "unspecified" and never in the card. */
enum xdpsec_mode {
	XDPSEC_MODE_TUNNEL = 1,
	XDPSEC_MODE_TRANSPORT = 2,
};

enum xdpsec_meta_flags {
	XDPSEC_META_F_IPV6 = 1 << 0,      /* the packet's (outer, for inbound) IP header is IPv6 */
	XDPSEC_META_F_UDP_ENCAP = 1 << 1, /* inbound: ESP in UDP (RFC 3948); the UDP header is at l4_off */
	XDPSEC_META_F_NO_NEIGH = 1 << 2,  /* outbound: next hop unresolved; smac/dmac are not valid */
	XDPSEC_META_F_VLAN = 1 << 3,      /* the frame carries one or two VLAN tags before l3_off */
	XDPSEC_META_F_OUTER_IPV6 = 1 << 4, /* outbound: the SA's outer family (and the FIB lookup's) is IPv6 */
};

/* Metadata in front of every packet the card hands to a worker (bpf_xdp_adjust_meta; the kernel allows at
 * most 32 bytes). In an AF_XDP frame it ends exactly where the packet begins: meta = frame + addr - 32.
 * Host byte order throughout. */
struct xdpsec_meta {
	__u16 magic;    /* XDPSEC_META_MAGIC */
	__u8 version;   /* XDPSEC_META_VERSION */
	__u8 dir;       /* enum xdpsec_dir */
	__u32 sa_index; /* index into the SA table (and the worker's SA array) */
	__u16 policy_id; /* outbound: the matching policy; inbound: the policy the SA serves */
	__u16 flags;    /* enum xdpsec_meta_flags */
	__u8 l3_off;    /* offset of the IP header from the frame start (after Ethernet and VLAN tags) */
	__u8 l4_proto;  /* next-layer protocol after IPv6 extension headers (inbound: 50, or 17 with UDP_ENCAP) */
	__u16 l4_off;   /* offset of the L4 header (inbound: ESP header, or UDP header with UDP_ENCAP) */
	__u32 egress_ifindex; /* outbound: FIB result for the SA's outer destination */
	__u8 smac[6];   /* outbound: source MAC for the outer Ethernet header */
	__u8 dmac[6];   /* outbound: next hop's MAC, unless NO_NEIGH */
};

enum xdpsec_sa_flags {
	XDPSEC_SA_F_VALID = 1 << 0,  /* offloaded and usable (mature or dying) */
	XDPSEC_SA_F_LARVAL = 1 << 1, /* reserved, not usable yet (ACQUIRE pending) */
};

/* One SA in the card's SA table, indexed by the SA index the control plane allocates. No key material,
 * ever: the keys live in the workers only. SAs are unidirectional (dir). */
struct xdpsec_sa {
	__u32 spi;       /* network order, as on the wire */
	__u8 flags;      /* enum xdpsec_sa_flags */
	__u8 dir;        /* enum xdpsec_dir */
	__u8 mode;       /* enum xdpsec_mode */
	__u8 family;     /* outer address family: 4 or 6 */
	__u16 encap_sport; /* UDP encapsulation ports (RFC 3948); 0 = plain ESP */
	__u16 encap_dport;
	__u16 policy_id; /* the policy this SA serves (the worker's post-decryption check), or NONE */
	__u16 _pad;
	__u32 reqid;
	__u32 src[4];    /* outer source, network order; IPv4 in src[0] */
	__u32 dst[4];    /* outer destination, network order; IPv4 in dst[0] */
};

/* Inbound SA lookup key: (SPI, destination, protocol) as in RFC 4301 §4.1. */
struct xdpsec_sa_key {
	__u32 spi;    /* network order */
	__u32 dst[4]; /* network order; IPv4 in dst[0], rest zero */
	__u8 family;  /* 4 or 6 */
	__u8 proto;   /* 50 (ESP); UDP-encapsulated ESP uses 50 as well */
	__u16 _pad;
};

enum xdpsec_policy_flags {
	XDPSEC_POL_F_INSTALLED = 1 << 0,
};

/* One policy in the card's policy table, indexed by policy ID. The selector lives in the tuple space. */
struct xdpsec_policy {
	__u32 sa_index; /* PROTECT: the SA (outbound: used; inbound: expected), else NONE */
	__u32 priority; /* lower wins; kept so the loader can rebuild its view after a restart */
	__u8 action;    /* enum xdpsec_action */
	__u8 dir;       /* enum xdpsec_dir */
	__u8 flags;     /* enum xdpsec_policy_flags */
	__u8 _pad;
};

enum xdpsec_rule_flags {
	XDPSEC_RULE_F_PORTS = 1 << 0, /* the selector constrains ports or ICMP type/code */
};

/* One policy's selector in a form the card matches with masks, and the policy's place in SPD order
 * (priority, then policy ID), which decides between matches found in different tuples. */
struct xdpsec_rule {
	__u32 src[4];      /* network order, already masked */
	__u32 src_mask[4]; /* network order */
	__u32 dst[4];
	__u32 dst_mask[4];
	__u32 priority;
	__u16 sport_lo, sport_hi; /* or ICMP type */
	__u16 dport_lo, dport_hi; /* or ICMP code */
	__u16 policy_id;
	__u8 proto;       /* 0 = any */
	__u8 flags;       /* enum xdpsec_rule_flags */
};

/* ---- The SPD as a tuple space (one per direction and family, two buffers each) ----
 *
 * Policies are grouped into tuples: sets of policies whose selectors constrain the same fields (source
 * and destination prefix lengths, protocol or any, each port exact or not). A tuple's policies are
 * hashed by those fields, masked; a packet probes each tuple once with its own fields under the tuple's
 * masks, and a hit is a bucket: the tuple's policies with exactly those masked fields, in SPD order,
 * checked in full (port ranges, and prefixes longer than the tuple's when the loader had to merge
 * tuples). The best match over the probed tuples wins; tuples are sorted by their best policy, so the
 * probing stops at the first tuple that cannot beat the match in hand. A bit array per list (a Bloom
 * filter with one hash) says which keys may be present, so most probes that miss cost no hash lookup. */

/* Most tuples a list holds: the loader merges tuples (shortening their masks) to stay within it. */
#define XDPSEC_MAX_TUPLES 64

/* Key of spd_buckets. */
struct xdpsec_bucket_key {
	__u32 src[4];  /* the packet's source under the tuple's mask, network order */
	__u32 dst[4];
	__u16 sport, dport; /* under the tuple's port masks; 0 in a fragment entry */
	__u8 proto;    /* under the tuple's protocol mask */
	__u8 frag;     /* 1: the non-first-fragment entry of a tuple that hashes ports (see below) */
	__u8 list;     /* (dir * 2 + buffer) * 2 + family (0 IPv4, 1 IPv6) */
	__u8 tuple;    /* the tuple's id (struct xdpsec_tuple.id) */
};

/* A bucket: how many rules it holds, its first rule in SPD order, and where the others are: n - 1
 * consecutive rules of spd_chain from rule index chain (rule i is rule[i % 8] of block i / 8).
 *
 * Non-first fragments have no ports (RFC 4301 §7), so a tuple that hashes ports cannot be probed with
 * them: such a tuple also holds, under frag = 1 and zero ports, one bucket per masked (addresses,
 * protocol) with all its policies of those fields, whatever their ports. */
struct xdpsec_bucket {
	__u32 n;
	__u32 chain;
	struct xdpsec_rule rule;
};

/* spd_chain's values: XDPSEC_RULE_BLOCK rules, so that one lookup serves several rules of a chain. */
#define XDPSEC_RULE_BLOCK 8

struct xdpsec_rule_block {
	struct xdpsec_rule rule[XDPSEC_RULE_BLOCK];
};

/* The filter's hash of a bucket key: multiply-xor over its words (IPv4 keys: src[0] and dst[0] only),
 * then a final mix; the top filter_bits bits of the result index the list's bit array. The loader
 * computes the same (loader/tss.go). */
#define XDPSEC_FILTER_MUL 0x9e3779b1u
#define XDPSEC_FILTER_MIX 0x85ebca6bu

/* One tuple: the masks its policies are hashed under, and its best policy in SPD order. */
struct xdpsec_tuple {
	__u32 src_mask[4]; /* network order */
	__u32 dst_mask[4];
	__u64 best;        /* (priority << 16) | policy ID of the tuple's first policy in SPD order */
	__u16 sport_mask, dport_mask; /* 0xffff or 0 */
	__u8 proto_mask;   /* 0xff or 0 */
	__u8 id;
	__u8 src_bits, dst_bits; /* the masks' prefix lengths, for people reading the map */
};

/* The tuples of one (direction, buffer, family), sorted by best. */
struct xdpsec_tuple_list {
	__u32 n;        /* tuples in use */
	__u32 policies; /* policies they hold */
	struct xdpsec_tuple t[XDPSEC_MAX_TUPLES];
};

/* State of the SPD of one direction: which of the two buffers (tuple lists, buckets keyed with them,
 * chains and filters) is live: gen & 1. The loader writes the idle buffer, then bumps gen; the card reads
 * gen before and after a lookup and retries when it moved (a sequence lock), and tags flow-cache entries
 * with gen so any SPD change invalidates them. */
struct xdpsec_spd {
	__u32 gen;
	__u32 _pad; /* mmap-able arrays are strided by 8 bytes */
};

/* Runtime settings, one entry; the loader writes it. */
struct xdpsec_config {
	__u8 default_action[2];  /* per direction: XDPSEC_ACT_BYPASS or XDPSEC_ACT_DISCARD */
	__u8 no_socket_verdict_in; /* XDP_DROP or XDP_PASS for offloaded ESP when no worker socket is bound */
	/* Non-zero while no worker serves the card (the daemon stopped, or is starting and reconciling):
	 * traffic of PROTECT policies and ESP of offloaded SAs are dropped (OutGuard, InGuard); BYPASS and
	 * DISCARD policies, the default verdicts and unknown ESP are handled as always. */
	__u8 guard;
	__u32 acquire_interval_ms; /* at most one ACQUIRE per policy per interval */
};

/* Key of local_addrs: one of the gateway's own addresses (on any interface of its namespace). UDP to
 * the encapsulation port is ESP-in-UDP only towards these (RFC 3948 ends at the gateway). */
struct xdpsec_addr_key {
	__u32 addr[4]; /* network order; IPv4 in addr[0], rest zero */
	__u8 family;   /* 4 or 6 */
	__u8 _pad[3];
};

enum xdpsec_flow_outcome {
	XDPSEC_FLOW_NOMATCH = 0,
	XDPSEC_FLOW_MATCH = 1,
	XDPSEC_FLOW_AMBIGUOUS = 2,
};

struct xdpsec_flow_key {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport, dport;
	__u8 dir;
	__u8 family; /* 4 or 6 */
	__u8 proto;
	__u8 nonfirst_frag;
};

struct xdpsec_flow {
	__u32 gen;       /* xdpsec_spd.gen of the direction when the entry was computed */
	__u16 policy_id;
	__u8 outcome;    /* enum xdpsec_flow_outcome */
	__u8 _pad;
};

/* Per SA, per CPU: what the card handed to the workers. */
struct xdpsec_sa_stats {
	__u64 packets;
	__u64 bytes;        /* IP length (outbound: plaintext packet; inbound: the ESP packet) */
	__u64 first_use_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) of the first packet on this CPU, 0 = none */
	__u64 last_use_ns;  /* CLOCK_MONOTONIC of the last packet on this CPU, 0 = none */
};

struct xdpsec_policy_stats {
	__u64 packets;
	__u64 bytes;
	__u64 last_use_ns; /* CLOCK_MONOTONIC of the last match on this CPU, 0 = none */
};

/* The workers' per-SA errors: 0..15 are crypto/esp.Reason's values (same order and names), 16.. the
 * worker's own. */
enum xdpsec_worker_error {
	XDPSEC_WERR_REPLAY = 0,
	XDPSEC_WERR_ICV,
	XDPSEC_WERR_BAD_PADDING,
	XDPSEC_WERR_BAD_NEXT_HEADER,
	XDPSEC_WERR_TRUNCATED,
	XDPSEC_WERR_SEQ_EXHAUSTED,
	XDPSEC_WERR_WRONG_SPI,
	XDPSEC_WERR_NOT_ESP,
	XDPSEC_WERR_BAD_HEADER,
	XDPSEC_WERR_FRAGMENT,
	XDPSEC_WERR_NO_ROOM,
	XDPSEC_WERR_TOO_BIG,
	XDPSEC_WERR_DUMMY,
	XDPSEC_WERR_ECN,
	XDPSEC_WERR_WIPED,
	XDPSEC_WERR_SEQ_UNRESERVED, /* outbound: above the durable sequence reservation (crypto/esp ceiling) */
	XDPSEC_WERR_POLICY = 16, /* post-decryption policy check failed (RFC 4301 §5.2) */
	XDPSEC_WERR_NO_NEIGH,    /* next hop unresolved: dropped, resolution asked */
	XDPSEC_WERR_TX_FULL,     /* no room on the TX ring or no free frame */
	XDPSEC_WERR_PMTU,        /* too big for the path MTU: ICMP sent back */
	XDPSEC_WERR_MAX = 24,    /* room for reasons to come; the array is this long */
};

/* Per SA, written by the workers with atomic adds through the mmap'd map, read by the control plane and by
 * bpftool. */
struct xdpsec_worker_stats {
	__u64 packets; /* packets the worker completed (sealed or opened and policy-checked) */
	__u64 bytes;   /* their plaintext IP length */
	__u64 errors[XDPSEC_WERR_MAX]; /* indexed by enum xdpsec_worker_error */
};

/* ACQUIRE record: a packet matched a PROTECT policy whose SA is missing or unusable. */
struct xdpsec_acquire {
	__u64 time_ns;   /* CLOCK_MONOTONIC */
	__u32 policy_id;
	__u32 sa_index;  /* what the policy points at (NONE or an unusable SA) */
	__u32 src[4];    /* the packet's selector tuple, network order */
	__u32 dst[4];
	__u16 sport, dport; /* ports, or ICMP type/code */
	__u8 family;
	__u8 proto;
	__u8 dir;
	__u8 nonfirst_frag;
};

/* Global reasons, one per-CPU counter each. Names after /proc/net/xfrm_stat where one fits (the comment
 * gives the name the loader reports), the card's own otherwise. Values are stable: append only. */
enum xdpsec_reason {
	XDPSEC_R_IN_NO_STATES = 0,   /* InNoStates: ESP for an SA not offloaded: then the inbound SPD decides */
	XDPSEC_R_IN_STATE_INVALID,   /* InStateInvalid: ESP for an offloaded SA that is not valid: dropped */
	XDPSEC_R_IN_STATE_MISMATCH,  /* InStateMismatch: UDP encapsulation differs from the SA's: dropped */
	XDPSEC_R_IN_NO_POLS,         /* InNoPols: plaintext matched no inbound policy, default discard */
	XDPSEC_R_IN_POL_BLOCK,       /* InPolBlock: plaintext matched an inbound DISCARD policy */
	XDPSEC_R_IN_TMPL_MISMATCH,   /* InTmplMismatch: plaintext where an inbound PROTECT policy applies */
	XDPSEC_R_OUT_NO_STATES,      /* OutNoStates: PROTECT policy without a usable SA: dropped, ACQUIRE */
	XDPSEC_R_OUT_POL_BLOCK,      /* OutPolBlock: outbound DISCARD policy */
	XDPSEC_R_OUT_NO_POLS,        /* OutNoPols: no outbound policy, default discard */
	XDPSEC_R_FRAG_AMBIGUOUS,     /* FragAmbiguous: non-first fragment a port selector may claim */
	XDPSEC_R_ESP_FRAGMENT,       /* InESPFragment: fragmented ESP to the gateway: passed to the kernel */
	XDPSEC_R_NO_SOCKET_OUT,      /* OutNoSocket: no worker socket on the queue: dropped */
	XDPSEC_R_NO_SOCKET_IN,       /* InNoSocket: no worker socket on the queue: configured verdict */
	XDPSEC_R_FIB_NO_NEIGH,       /* FibNoNeigh: next hop unresolved: handed over with the flag */
	XDPSEC_R_FIB_NO_ROUTE,       /* FibNoRoute: no route / blackhole / unreachable / prohibit: dropped */
	XDPSEC_R_FIB_FWD_DISABLED,   /* FibFwdDisabled: forwarding off on the ingress interface: dropped */
	XDPSEC_R_FIB_OTHER,          /* FibOther: other FIB failure: dropped */
	XDPSEC_R_META,               /* MetaError: no room for the metadata: dropped */
	XDPSEC_R_SPD_BUSY,           /* SPDBusy: the SPD changed during two scans in a row: dropped */
	XDPSEC_R_POLICY_MISSING,     /* PolicyMissing: a rule names a policy no longer installed: dropped */
	XDPSEC_R_ACQUIRE_SENT,       /* AcquireSent: ACQUIRE records written */
	XDPSEC_R_ACQUIRE_LOST,       /* AcquireLost: ACQUIRE ring full */
	XDPSEC_R_NON_IP,             /* NonIP: not IPv4/IPv6 (ARP, LLDP, …): passed */
	XDPSEC_R_PARSE_ETH,          /* ParseEthernet: shorter than an Ethernet header */
	XDPSEC_R_PARSE_VLAN,         /* ParseVLAN: truncated VLAN tag */
	XDPSEC_R_PARSE_VLAN_DEPTH,   /* ParseVLANDepth: more than two VLAN tags */
	XDPSEC_R_PARSE_IPV4,         /* ParseIPv4: truncated or malformed IPv4 header */
	XDPSEC_R_PARSE_IPV6,         /* ParseIPv6: truncated or malformed IPv6 header */
	XDPSEC_R_PARSE_IPV6_EXT,     /* ParseIPv6Ext: truncated, too long or too deep extension chain */
	XDPSEC_R_PARSE_L4,           /* ParseL4: truncated TCP/UDP/SCTP/ICMP header */
	XDPSEC_R_PARSE_ESP,          /* ParseESP: truncated ESP header */
	XDPSEC_R_OUT_PROTECT,        /* OutProtect: handed to a worker for protection */
	XDPSEC_R_OUT_BYPASS,         /* OutBypass: passed by an outbound BYPASS policy or default */
	XDPSEC_R_IN_OFFLOAD,         /* InOffload: ESP handed to a worker */
	XDPSEC_R_IN_BYPASS,          /* InBypass: plaintext passed by an inbound BYPASS policy or default */
	XDPSEC_R_OUT_GUARD,          /* OutGuard: PROTECT traffic while no worker serves the card (guard): dropped */
	XDPSEC_R_IN_GUARD,           /* InGuard: ESP of an offloaded SA while no worker serves the card (guard): dropped */
	XDPSEC_R_IN_IKE,             /* InIKE: UDP to the encapsulation port of a gateway address that is not ESP
	                              * (IKE's non-ESP marker, NAT-keepalive): passed to the gateway's stack */
	XDPSEC_R_MAX,
};

/* Room in the reasons map: reasons are appended without changing its size, so that a card pinned by
 * an older build stays compatible with a newer one (XDPSEC_R_MAX must not exceed it). */
#define XDPSEC_REASON_SLOTS 64

#endif
