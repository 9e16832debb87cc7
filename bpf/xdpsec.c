//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The card: two XDP programs over one set of maps.
 *
 * xdpsec_out runs on the protected-side interface: it classifies each IP packet against the outbound SPD
 * and hands PROTECT traffic to a worker over AF_XDP with metadata naming the SA and the next hop; BYPASS
 * passes, DISCARD drops. xdpsec_in runs on the wire-side interface: ESP and ESP-in-UDP (to the gateway's
 * own addresses) go to a worker when their SA is offloaded; everything else, ESP with an SA the card
 * does not hold included, is checked against the inbound SPD. In guard state (struct xdpsec_config)
 * PROTECT traffic and ESP of offloaded SAs are dropped.
 *
 * Every exit path has a reason counter (enum xdpsec_reason). See doc.go for the design. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xdpsec.h"
#include "maps.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

/* What the parser extracts from a frame. */
struct pkt {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport, dport;
	__u16 l3_off;
	__u16 l4_off;
	__u16 l3_len; /* the IP header's idea of the packet length */
	__u32 frame_len; /* the whole frame, all fragments of a multi-buffer packet included */
	__u8 family;  /* 4 or 6 */
	__u8 proto;
	__u8 nonfirst_frag;
	__u8 fragment; /* any fragment (first or not) */
	__u8 vlan;
	__u8 _pad;
};

#define PARSE_OK 0xffff
#define PARSE_NOT_IP 0xfffe

static __always_inline void count(__u32 reason)
{
	__u64 *c = bpf_map_lookup_elem(&reasons, &reason);
	if (c)
		*c += 1;
}

static __always_inline int proto_has_ports(__u8 p)
{
	return p == IPPROTO_TCP || p == IPPROTO_UDP || p == IPPROTO_SCTP || p == IPPROTO_UDPLITE ||
	       p == IPPROTO_DCCP;
}

/* parse_l4 reads ports (or ICMP type/code) at p->l4_off, within both the frame and the IP length (so
 * Ethernet padding is never taken for a header). Non-first fragments have none. */
static __always_inline __u32 parse_l4(void *data, void *data_end, struct pkt *p)
{
	if (p->nonfirst_frag)
		return PARSE_OK;
	__u32 off = p->l4_off;
	if (off > XDPSEC_MAX_L4_OFF)
		return XDPSEC_R_PARSE_L4;
	__u32 room = p->l3_off + p->l3_len - off; /* parse_ipv4/6 ensured l4_off <= the IP end */
	void *l4 = data + off;
	if (proto_has_ports(p->proto)) {
		if (l4 + 4 > data_end || room < 4)
			return XDPSEC_R_PARSE_L4;
		p->sport = bpf_ntohs(*(__be16 *)l4);
		p->dport = bpf_ntohs(*(__be16 *)(l4 + 2));
	} else if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6) {
		if (l4 + 2 > data_end || room < 2)
			return XDPSEC_R_PARSE_L4;
		p->sport = *(__u8 *)l4;
		p->dport = *(__u8 *)(l4 + 1);
	} else if (p->proto == IPPROTO_ESP) {
		if (l4 + 8 > data_end || room < 8)
			return XDPSEC_R_PARSE_ESP;
	}
	return PARSE_OK;
}

static __always_inline __u32 parse_ipv4(void *data, void *data_end, struct pkt *p)
{
	struct iphdr *ip = data + p->l3_off;
	if ((void *)(ip + 1) > data_end)
		return XDPSEC_R_PARSE_IPV4;
	__u32 hl = ip->ihl * 4;
	__u32 tot = bpf_ntohs(ip->tot_len);
	if (ip->version != 4 || hl < sizeof(*ip) || tot < hl || p->l3_off + tot > p->frame_len)
		return XDPSEC_R_PARSE_IPV4;
	if ((void *)ip + hl > data_end)
		return XDPSEC_R_PARSE_IPV4;
	p->family = 4;
	p->src[0] = ip->saddr;
	p->dst[0] = ip->daddr;
	p->proto = ip->protocol;
	p->l3_len = tot;
	__u16 frag = bpf_ntohs(ip->frag_off);
	p->fragment = (frag & 0x3fff) != 0; /* MF or an offset */
	p->nonfirst_frag = (frag & 0x1fff) != 0;
	p->l4_off = p->l3_off + hl;
	return PARSE_OK;
}

static __always_inline int ipv6_is_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
	       nh == IPPROTO_FRAGMENT;
}

static __always_inline __u32 parse_ipv6(void *data, void *data_end, struct pkt *p)
{
	struct ipv6hdr *ip6 = data + p->l3_off;
	if ((void *)(ip6 + 1) > data_end)
		return XDPSEC_R_PARSE_IPV6;
	__u32 plen = bpf_ntohs(ip6->payload_len);
	if (ip6->version != 6 || p->l3_off + sizeof(*ip6) + plen > p->frame_len)
		return XDPSEC_R_PARSE_IPV6;
	p->family = 6;
	__builtin_memcpy(p->src, &ip6->saddr, 16);
	__builtin_memcpy(p->dst, &ip6->daddr, 16);
	p->l3_len = sizeof(*ip6) + plen;
	__u8 nh = ip6->nexthdr;
	__u32 off = p->l3_off + sizeof(*ip6);
	__u32 end = p->l3_off + p->l3_len;
	int i;
	/* A bounded walk of the extension chain (RFC 8200 §4). AH is not skipped: like ESP it is the
	 * "next layer protocol" a selector names. */
	for (i = 0; i < XDPSEC_MAX_IPV6_EXT; i++) {
		if (!ipv6_is_ext(nh))
			break;
		if (off > XDPSEC_MAX_L4_OFF)
			return XDPSEC_R_PARSE_IPV6_EXT;
		__u8 *h = data + off;
		if ((void *)(h + 8) > data_end || off + 8 > end)
			return XDPSEC_R_PARSE_IPV6_EXT;
		if (nh == IPPROTO_FRAGMENT) {
			__u16 fo = bpf_ntohs(*(__be16 *)(h + 2));
			p->fragment = 1;
			nh = h[0];
			off += 8;
			if (fo & 0xfff8) {
				/* A non-first fragment carries the middle of the fragmentable part: its
				 * protocol is the fragment header's Next Header, and nothing follows to walk. */
				p->nonfirst_frag = 1;
				p->proto = nh;
				p->l4_off = off;
				return PARSE_OK;
			}
			continue;
		}
		nh = h[0];
		off += ((__u32)h[1] + 1) * 8;
	}
	if (ipv6_is_ext(nh))
		return XDPSEC_R_PARSE_IPV6_EXT;
	if (off > end)
		return XDPSEC_R_PARSE_IPV6_EXT;
	p->proto = nh;
	p->l4_off = off;
	return PARSE_OK;
}

/* parse fills p from the frame; PARSE_OK, PARSE_NOT_IP or a parse reason. */
static __always_inline __u32 parse(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDPSEC_R_PARSE_ETH;
	__u16 proto = eth->h_proto;
	__u32 off = sizeof(*eth);
	/* Headers are read from the linear part only (data_end bounds every read); lengths are checked
	 * against the whole frame, so a multi-buffer packet (xdp.frags) is not mistaken for a truncated one. */
	p->frame_len = bpf_xdp_get_buff_len(ctx);
	int i;
	for (i = 0; i < 3; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if (i == 2)
			return XDPSEC_R_PARSE_VLAN_DEPTH;
		__be16 *tag = data + off;
		if ((void *)(tag + 2) > data_end)
			return XDPSEC_R_PARSE_VLAN;
		proto = tag[1];
		off += 4;
		p->vlan = 1;
	}
	p->l3_off = off;
	__u32 r;
	if (proto == bpf_htons(ETH_P_IP))
		r = parse_ipv4(data, data_end, p);
	else if (proto == bpf_htons(ETH_P_IPV6))
		r = parse_ipv6(data, data_end, p);
	else
		return PARSE_NOT_IP;
	if (r != PARSE_OK)
		return r;
	return parse_l4(data, data_end, p);
}

/* parse_verdict parses the frame into p. It returns -1 when p is an IP packet to classify, else the
 * verdict: pass for what is not IP (not the card's business), drop for what does not parse. */
static __always_inline int parse_verdict(struct xdp_md *ctx, struct pkt *p)
{
	__u32 r = parse(ctx, p);
	if (r == PARSE_NOT_IP) {
		count(XDPSEC_R_NON_IP);
		return XDP_PASS;
	}
	if (r != PARSE_OK) {
		count(r);
		return XDP_DROP;
	}
	return -1;
}

/* ---- SPD lookup ---- */

struct tss_ctx {
	struct xdpsec_bucket_key k; /* the key of the current probe */
	__u32 src[4];
	__u32 dst[4];
	__u64 best;  /* SPD order of the match so far ((priority << 16) | policy ID); ~0 for none */
	__u32 list;  /* spd_tuples index */
	__u32 next;  /* the next tuple to probe */
	__u32 pos;   /* the current bucket's next rule in spd_chain */
	__u32 left;  /* rules of the current bucket still to check there */
	__u16 sport, dport;
	__u16 policy_id;
	__u8 proto;
	__u8 nonfirst_frag;
	__u8 outcome;
	__u8 v6;
};

static __always_inline __u64 rule_order(const struct xdpsec_rule *r)
{
	return ((__u64)r->priority << 16) | r->policy_id;
}

/* rule_matches reports whether rule r selects the packet, and how (*outcome). */
static __always_inline int rule_matches(const struct xdpsec_rule *r, const struct tss_ctx *c, __u8 *outcome)
{
	if (r->proto && r->proto != c->proto)
		return 0;
	/* The key matched under the tuple's masks; a rule may be more specific than its tuple (merged
	 * tuples). IPv4 lists hold only IPv4 rules, whose other words are zero. */
	if ((c->src[0] & r->src_mask[0]) != r->src[0] || (c->dst[0] & r->dst_mask[0]) != r->dst[0])
		return 0;
	if (c->v6 &&
	    ((c->src[1] & r->src_mask[1]) != r->src[1] || (c->dst[1] & r->dst_mask[1]) != r->dst[1] ||
	     (c->src[2] & r->src_mask[2]) != r->src[2] || (c->dst[2] & r->dst_mask[2]) != r->dst[2] ||
	     (c->src[3] & r->src_mask[3]) != r->src[3] || (c->dst[3] & r->dst_mask[3]) != r->dst[3]))
		return 0;
	if (c->nonfirst_frag) {
		/* RFC 4301 §7: ports are OPAQUE; a port selector cannot be decided, so the fragment is
		 * ambiguous and the caller discards it. */
		*outcome = (r->flags & XDPSEC_RULE_F_PORTS) ? XDPSEC_FLOW_AMBIGUOUS : XDPSEC_FLOW_MATCH;
		return 1;
	}
	if (c->sport < r->sport_lo || c->sport > r->sport_hi || c->dport < r->dport_lo || c->dport > r->dport_hi)
		return 0;
	*outcome = XDPSEC_FLOW_MATCH;
	return 1;
}

/* check_rule looks at the next rule of a bucket (buckets are in SPD order): it returns 1 when the rule
 * matches, which decides the bucket; the rule is kept in c if it beats the match in hand. */
static __always_inline int check_rule(const struct xdpsec_rule *r, struct tss_ctx *c)
{
	__u8 outcome;
	if (!rule_matches(r, c, &outcome))
		return 0;
	__u64 order = rule_order(r);
	if (order < c->best) {
		c->best = order;
		c->policy_id = r->policy_id;
		c->outcome = outcome;
	}
	return 1;
}

static __always_inline __u32 filter_mix(__u32 h, __u32 w)
{
	return (h ^ w) * XDPSEC_FILTER_MUL;
}

/* maybe_present asks the list's filter whether key k may be in spd_buckets (no false negatives). */
static __always_inline int maybe_present(const struct tss_ctx *c)
{
	const struct xdpsec_bucket_key *k = &c->k;
	__u32 h = filter_mix(0, k->src[0]);
	h = filter_mix(h, k->dst[0]);
	if (c->v6) {
		h = filter_mix(h, k->src[1]);
		h = filter_mix(h, k->dst[1]);
		h = filter_mix(h, k->src[2]);
		h = filter_mix(h, k->dst[2]);
		h = filter_mix(h, k->src[3]);
		h = filter_mix(h, k->dst[3]);
	}
	h = filter_mix(h, ((__u32)k->sport << 16) | k->dport);
	h = filter_mix(h, k->proto | ((__u32)k->frag << 8) | ((__u32)k->tuple << 16));
	h ^= h >> 15;
	h *= XDPSEC_FILTER_MIX;
	h ^= h >> 13;
	__u32 bit = h >> (32 - filter_bits);
	__u32 word = (c->list << (filter_bits - 6)) + (bit >> 6);
	__u64 *w = bpf_map_lookup_elem(&spd_filter, &word);
	return w && (*w & (1ULL << (bit & 63)));
}

/* probe_tuple probes the next tuple: the packet's fields under the tuple's masks, through the filter,
 * then one hash lookup. */
static __always_inline long probe_tuple(struct tss_ctx *c, const struct xdpsec_tuple_list *l)
{
	__u32 i = c->next;
	if (i >= l->n || i >= XDPSEC_MAX_TUPLES)
		return 1;
	const struct xdpsec_tuple *t = &l->t[i];
	/* Tuples come in order of their best policy: none from here on can beat the match in hand. */
	if (t->best > c->best)
		return 1;
	c->next = i + 1;
	struct xdpsec_bucket_key *k = &c->k;
	int j;
#pragma unroll
	for (j = 0; j < 4; j++) {
		k->src[j] = c->src[j] & t->src_mask[j];
		k->dst[j] = c->dst[j] & t->dst_mask[j];
	}
	k->proto = c->proto & t->proto_mask;
	if (c->nonfirst_frag) {
		k->sport = 0;
		k->dport = 0;
		k->frag = (t->sport_mask | t->dport_mask) != 0;
	} else {
		k->sport = c->sport & t->sport_mask;
		k->dport = c->dport & t->dport_mask;
		k->frag = 0;
	}
	k->tuple = t->id;
	if (!maybe_present(c))
		return 0;
	struct xdpsec_bucket *b = bpf_map_lookup_elem(&spd_buckets, k);
	/* A bucket whose first rule cannot beat the match in hand has none that can. */
	if (!b || rule_order(&b->rule) > c->best || check_rule(&b->rule, c))
		return 0;
	if (b->n > 1) {
		c->left = b->n - 1;
		c->pos = b->chain;
	}
	return 0;
}

/* walk_chain checks the current bucket's next rules in spd_chain, up to the end of their block. */
static __always_inline long walk_chain(struct tss_ctx *c)
{
	__u32 idx = c->pos / XDPSEC_RULE_BLOCK;
	__u32 first = c->pos % XDPSEC_RULE_BLOCK;
	__u32 n = XDPSEC_RULE_BLOCK - first;
	if (n > c->left)
		n = c->left;
	/* Where the next step goes on, unless a rule here decides the bucket. */
	c->left -= n;
	c->pos += n;
	struct xdpsec_rule_block *blk = bpf_map_lookup_elem(&spd_chain, &idx);
	if (!blk || rule_order(&blk->rule[first & (XDPSEC_RULE_BLOCK - 1)]) > c->best) {
		c->left = 0;
		return 0;
	}
	int j, done = 0;
#pragma unroll
	for (j = 0; j < XDPSEC_RULE_BLOCK; j++) {
		if (j < n && !done)
			done = check_rule(&blk->rule[(first + j) & (XDPSEC_RULE_BLOCK - 1)], c);
	}
	if (done)
		c->left = 0;
	return 0;
}

static long tss_step(__u32 i, struct tss_ctx *c)
{
	if (c->left)
		return walk_chain(c);
	struct xdpsec_tuple_list *l = bpf_map_lookup_elem(&spd_tuples, &c->list);
	if (!l)
		return 1;
	return probe_tuple(c, l);
}

/* lookup finds the packet's best policy in the live tuple space of (dir, family). Cost: per tuple
 * probed (at most XDPSEC_MAX_TUPLES, fewer when the match in hand beats the rest) a masked key and its
 * filter bit, and a hash lookup when the bit is set; per bucket hit, its rules in SPD order up to the
 * first that matches. */
static __always_inline void lookup(__u32 gen, __u32 dir, struct pkt *p, struct tss_ctx *c)
{
	__u32 fam = p->family == 6;
	c->list = (dir * 2 + (gen & 1)) * 2 + fam;
	c->k.list = c->list;
	c->v6 = fam;
	c->next = 0;
	c->left = 0;
	c->best = ~0ULL;
	c->outcome = XDPSEC_FLOW_NOMATCH;
	c->policy_id = XDPSEC_NONE_U16;
	/* Every step probes a tuple or checks the rest of a chain's block. Bounded by the tuples, plus per
	 * bucket probed a partial first and last block, plus the full blocks of the chains probed: each
	 * policy is in one bucket a packet probes at most. */
	bpf_loop(3 * XDPSEC_MAX_TUPLES + policy_capacity / XDPSEC_RULE_BLOCK, tss_step, c, 0);
}

/* classify returns the flow outcome and fills *policy_id; it consults the flow cache first. Returns
 * 0xff when the SPD kept changing under two lookups. */
static __always_inline __u8 classify(__u32 dir, struct pkt *p, __u16 *policy_id)
{
	struct xdpsec_spd *st = bpf_map_lookup_elem(&spd_state, &dir);
	if (!st)
		return 0xff;
	struct xdpsec_flow_key k = {};
	__builtin_memcpy(k.src, p->src, 16);
	__builtin_memcpy(k.dst, p->dst, 16);
	k.sport = p->sport;
	k.dport = p->dport;
	k.dir = dir;
	k.family = p->family;
	k.proto = p->proto;
	k.nonfirst_frag = p->nonfirst_frag;

	__u32 gen = st->gen;
	struct xdpsec_flow *f = bpf_map_lookup_elem(&flow_cache, &k);
	if (f && f->gen == gen) {
		*policy_id = f->policy_id;
		return f->outcome;
	}

	struct tss_ctx c = {};
	__builtin_memcpy(c.src, p->src, 16);
	__builtin_memcpy(c.dst, p->dst, 16);
	c.sport = p->sport;
	c.dport = p->dport;
	c.proto = p->proto;
	c.nonfirst_frag = p->nonfirst_frag;

	int attempt;
	for (attempt = 0; attempt < 2; attempt++) {
		lookup(gen, dir, p, &c);
		/* The atomic read orders the lookup's loads before it (a sequence lock's closing read). */
		__u32 now = __sync_fetch_and_add(&st->gen, 0);
		if (now == gen) {
			struct xdpsec_flow v = { .gen = gen, .policy_id = c.policy_id, .outcome = c.outcome };
			bpf_map_update_elem(&flow_cache, &k, &v, BPF_ANY);
			*policy_id = c.policy_id;
			return c.outcome;
		}
		gen = now;
	}
	return 0xff;
}

static __always_inline void count_policy(__u32 id, __u32 len)
{
	struct xdpsec_policy_stats *s = bpf_map_lookup_elem(&policy_stats, &id);
	if (s) {
		s->packets++;
		s->bytes += len;
		s->last_use_ns = bpf_ktime_get_ns();
	}
}

static __always_inline void count_sa(__u32 idx, __u32 len)
{
	struct xdpsec_sa_stats *s = bpf_map_lookup_elem(&sa_stats, &idx);
	if (s) {
		__u64 now = bpf_ktime_get_ns();
		s->packets++;
		s->bytes += len;
		if (!s->first_use_ns)
			s->first_use_ns = now;
		s->last_use_ns = now;
	}
}

static __always_inline struct xdpsec_config *config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&card_config, &zero);
}

/* guarded reports whether the card is in guard state (struct xdpsec_config.guard); without its
 * settings the card knows nothing and fails closed. */
static __always_inline int guarded(void)
{
	struct xdpsec_config *cfg = config();
	return !cfg || cfg->guard;
}

/* is_local reports whether the packet is addressed to the gateway itself (local_addrs). */
static __always_inline int is_local(const struct pkt *p)
{
	struct xdpsec_addr_key k = {};
	__builtin_memcpy(k.addr, p->dst, 16);
	k.family = p->family;
	return bpf_map_lookup_elem(&local_addrs, &k) != 0;
}

/* acquire emits an ACQUIRE record, at most one per policy per configured interval. */
static __always_inline void acquire(__u32 policy_id, __u32 sa_index, __u32 dir, struct pkt *p)
{
	struct xdpsec_config *cfg = config();
	__u64 *last = bpf_map_lookup_elem(&acquire_last, &policy_id);
	if (!cfg || !last)
		return;
	__u64 now = bpf_ktime_get_ns();
	__u64 prev = *last;
	if (prev && now - prev < (__u64)cfg->acquire_interval_ms * 1000000)
		return;
	/* One CPU wins the slot; the others see their compare fail. */
	if (__sync_val_compare_and_swap(last, prev, now) != prev)
		return;
	struct xdpsec_acquire *a = bpf_ringbuf_reserve(&acquire_ring, sizeof(*a), 0);
	if (!a) {
		count(XDPSEC_R_ACQUIRE_LOST);
		return;
	}
	a->time_ns = now;
	a->policy_id = policy_id;
	a->sa_index = sa_index;
	__builtin_memcpy(a->src, p->src, 16);
	__builtin_memcpy(a->dst, p->dst, 16);
	a->sport = p->sport;
	a->dport = p->dport;
	a->family = p->family;
	a->proto = p->proto;
	a->dir = dir;
	a->nonfirst_frag = p->nonfirst_frag;
	bpf_ringbuf_submit(a, 0);
	count(XDPSEC_R_ACQUIRE_SENT);
}

/* put_meta prepends struct xdpsec_meta, filled for the worker of dir, and returns it, or NULL. */
static __always_inline struct xdpsec_meta *put_meta(struct xdp_md *ctx, __u32 dir, __u32 sa_index,
						    __u16 policy_id, struct pkt *p)
{
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct xdpsec_meta)))
		return 0;
	struct xdpsec_meta *m = (void *)(long)ctx->data_meta;
	if ((void *)(m + 1) > (void *)(long)ctx->data)
		return 0;
	m->magic = XDPSEC_META_MAGIC;
	m->version = XDPSEC_META_VERSION;
	m->dir = dir;
	m->sa_index = sa_index;
	m->policy_id = policy_id;
	m->flags = (p->family == 6 ? XDPSEC_META_F_IPV6 : 0) | (p->vlan ? XDPSEC_META_F_VLAN : 0);
	m->l3_off = p->l3_off;
	m->l4_proto = p->proto;
	m->l4_off = p->l4_off;
	m->egress_ifindex = 0;
	__builtin_memset(m->smac, 0, 6);
	__builtin_memset(m->dmac, 0, 6);
	return m;
}

/* to_worker redirects the packet to the crypto worker of dir on this queue's socket in xsks (xsks_out
 * or xsks_in) and counts it against its SA; without a socket the verdict is no_socket. */
static __always_inline int to_worker(struct xdp_md *ctx, void *xsks, __u32 dir, __u32 sa_index, __u32 len,
				     int no_socket)
{
	__u32 q = ctx->rx_queue_index;
	if (!bpf_map_lookup_elem(xsks, &q)) {
		count(dir == XDPSEC_DIR_OUT ? XDPSEC_R_NO_SOCKET_OUT : XDPSEC_R_NO_SOCKET_IN);
		return no_socket;
	}
	count_sa(sa_index, len);
	count(dir == XDPSEC_DIR_OUT ? XDPSEC_R_OUT_PROTECT : XDPSEC_R_IN_OFFLOAD);
	return bpf_redirect_map(xsks, q, XDP_DROP);
}

/* policy_for classifies p against the SPD of dir and returns the installed policy that matched (its id
 * in *pid), counted. Otherwise it returns NULL and the verdict in *verdict: the default action when no
 * policy matches, a drop for an ambiguous fragment, a busy SPD or a policy the card lacks. */
static __always_inline struct xdpsec_policy *policy_for(__u32 dir, struct pkt *p, __u16 *pid, int *verdict)
{
	__u8 outcome = classify(dir, p, pid);
	struct xdpsec_config *cfg = config();
	*verdict = XDP_DROP;
	if (!cfg)
		return 0;
	switch (outcome) {
	case XDPSEC_FLOW_MATCH: {
		__u32 id = *pid;
		struct xdpsec_policy *pol = bpf_map_lookup_elem(&policy_table, &id);
		if (!pol || !(pol->flags & XDPSEC_POL_F_INSTALLED)) {
			count(XDPSEC_R_POLICY_MISSING);
			return 0;
		}
		count_policy(id, p->l3_len);
		return pol;
	}
	case XDPSEC_FLOW_NOMATCH:
		if (cfg->default_action[dir] == XDPSEC_ACT_BYPASS) {
			count(dir == XDPSEC_DIR_OUT ? XDPSEC_R_OUT_BYPASS : XDPSEC_R_IN_BYPASS);
			*verdict = XDP_PASS;
			return 0;
		}
		count(dir == XDPSEC_DIR_OUT ? XDPSEC_R_OUT_NO_POLS : XDPSEC_R_IN_NO_POLS);
		return 0;
	case XDPSEC_FLOW_AMBIGUOUS:
		count(XDPSEC_R_FRAG_AMBIGUOUS);
		return 0;
	}
	count(XDPSEC_R_SPD_BUSY);
	return 0;
}

/* ---- protected side ---- */

static __always_inline int out_protect(struct xdp_md *ctx, struct pkt *p, __u16 policy_id, __u32 sa_index)
{
	struct xdpsec_sa *sa = bpf_map_lookup_elem(&sa_table, &sa_index);
	if (!sa || !(sa->flags & XDPSEC_SA_F_VALID) || sa->dir != XDPSEC_DIR_OUT) {
		count(XDPSEC_R_OUT_NO_STATES);
		acquire(policy_id, sa_index, XDPSEC_DIR_OUT, p);
		return XDP_DROP;
	}

	/* The next hop of the SA's outer destination, so the worker needs no lookup of its own. Forwarding
	 * must be enabled on the protected-side interface (the FIB helper checks it, as for any router). */
	struct bpf_fib_lookup fib = {};
	fib.ifindex = ctx->ingress_ifindex;
	fib.l4_protocol = sa->encap_dport ? IPPROTO_UDP : IPPROTO_ESP;
	if (sa->family == 6) {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, sa->src, 16);
		__builtin_memcpy(fib.ipv6_dst, sa->dst, 16);
	} else {
		fib.family = AF_INET;
		fib.ipv4_src = sa->src[0];
		fib.ipv4_dst = sa->dst[0];
	}
	__u8 outer6 = sa->family == 6;
	long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	__u16 flags = 0;
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		break;
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		/* Still the worker's packet: it drops and counts it and asks for resolution. Handing
		 * protected plaintext to the kernel is never an option. */
		count(XDPSEC_R_FIB_NO_NEIGH);
		flags = XDPSEC_META_F_NO_NEIGH;
		break;
	case BPF_FIB_LKUP_RET_BLACKHOLE:
	case BPF_FIB_LKUP_RET_UNREACHABLE:
	case BPF_FIB_LKUP_RET_PROHIBIT:
	case BPF_FIB_LKUP_RET_NOT_FWDED:
		count(XDPSEC_R_FIB_NO_ROUTE);
		return XDP_DROP;
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
		count(XDPSEC_R_FIB_FWD_DISABLED);
		return XDP_DROP;
	default:
		count(XDPSEC_R_FIB_OTHER);
		return XDP_DROP;
	}

	struct xdpsec_meta *m = put_meta(ctx, XDPSEC_DIR_OUT, sa_index, policy_id, p);
	if (!m) {
		count(XDPSEC_R_META);
		return XDP_DROP;
	}
	m->flags |= flags | (outer6 ? XDPSEC_META_F_OUTER_IPV6 : 0);
	m->egress_ifindex = fib.ifindex;
	if (!flags) {
		__builtin_memcpy(m->smac, fib.smac, 6);
		__builtin_memcpy(m->dmac, fib.dmac, 6);
	}
	return to_worker(ctx, &xsks_out, XDPSEC_DIR_OUT, sa_index, p->l3_len, XDP_DROP);
}

SEC("xdp")
int xdpsec_out(struct xdp_md *ctx)
{
	struct pkt p = {};
	int verdict = parse_verdict(ctx, &p);
	if (verdict >= 0)
		return verdict;
	__u16 pid = XDPSEC_NONE_U16;
	struct xdpsec_policy *pol = policy_for(XDPSEC_DIR_OUT, &p, &pid, &verdict);
	if (!pol)
		return verdict;
	if (pol->action == XDPSEC_ACT_PROTECT) {
		if (guarded()) {
			/* No worker serves the card: protected traffic waits (is dropped), never leaks. */
			count(XDPSEC_R_OUT_GUARD);
			return XDP_DROP;
		}
		return out_protect(ctx, &p, pid, pol->sa_index);
	}
	if (pol->action == XDPSEC_ACT_BYPASS) {
		count(XDPSEC_R_OUT_BYPASS);
		return XDP_PASS;
	}
	count(XDPSEC_R_OUT_POL_BLOCK);
	return XDP_DROP;
}

/* ---- wire side ---- */

/* in_esp hands ESP (or ESP-in-UDP, encap) of an offloaded SA to a worker and returns the verdict; for
 * an SA the card does not hold it returns -1, and the packet is then classified like any other. */
static __always_inline int in_esp(struct xdp_md *ctx, struct pkt *p, __u32 esp_off, __u8 encap)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (esp_off > XDPSEC_MAX_L4_OFF + 8) {
		count(XDPSEC_R_PARSE_ESP);
		return XDP_DROP;
	}
	__be32 *spi = data + esp_off;
	if ((void *)(spi + 2) > data_end) {
		count(XDPSEC_R_PARSE_ESP);
		return XDP_DROP;
	}
	struct xdpsec_sa_key k = {};
	k.spi = *spi;
	__builtin_memcpy(k.dst, p->dst, 16);
	k.family = p->family;
	k.proto = IPPROTO_ESP;
	__u32 *idx = bpf_map_lookup_elem(&sa_in_lookup, &k);
	if (!idx) {
		/* Not offloaded: the inbound SPD decides, as for any packet (RFC 4301 §5.2). Passing it
		 * blindly would let a forged SPI carry anything past an inbound PROTECT policy. */
		count(XDPSEC_R_IN_NO_STATES);
		return -1;
	}
	if (guarded()) {
		/* The SA's worker is gone: nothing can open it now. */
		count(XDPSEC_R_IN_GUARD);
		return XDP_DROP;
	}
	__u32 sa_index = *idx;
	struct xdpsec_sa *sa = bpf_map_lookup_elem(&sa_table, &sa_index);
	if (!sa || !(sa->flags & XDPSEC_SA_F_VALID) || sa->dir != XDPSEC_DIR_IN) {
		count(XDPSEC_R_IN_STATE_INVALID);
		return XDP_DROP;
	}
	if (!!sa->encap_dport != encap) {
		count(XDPSEC_R_IN_STATE_MISMATCH);
		return XDP_DROP;
	}
	struct xdpsec_config *cfg = config();
	if (!cfg)
		return XDP_DROP;

	struct xdpsec_meta *m = put_meta(ctx, XDPSEC_DIR_IN, sa_index, sa->policy_id, p);
	if (!m) {
		count(XDPSEC_R_META);
		return XDP_DROP;
	}
	if (encap)
		m->flags |= XDPSEC_META_F_UDP_ENCAP;
	return to_worker(ctx, &xsks_in, XDPSEC_DIR_IN, sa_index, p->l3_len,
			 cfg->no_socket_verdict_in == XDP_PASS ? XDP_PASS : XDP_DROP);
}

SEC("xdp")
int xdpsec_in(struct xdp_md *ctx)
{
	struct pkt p = {};
	int verdict = parse_verdict(ctx, &p);
	if (verdict >= 0)
		return verdict;

	if (p.proto == IPPROTO_ESP) {
		if (p.fragment) {
			if (is_local(&p)) {
				/* Reassembly is the kernel's job; the worker sees whole ESP packets only. */
				count(XDPSEC_R_ESP_FRAGMENT);
				return XDP_PASS;
			}
			/* Passing through to another host: the inbound SPD decides, as for any packet. */
		} else {
			verdict = in_esp(ctx, &p, p.l4_off, 0);
			if (verdict >= 0)
				return verdict;
		}
	} else if (p.proto == IPPROTO_UDP && !p.fragment && p.dport == encap_port && is_local(&p)) {
		/* ESP-in-UDP ends at the gateway (RFC 3948); UDP to the port of any other host is plain UDP.
		 * RFC 3948 §2.2: four zero bytes (the non-ESP marker) mean IKE; a single 0xff byte is a
		 * NAT-keepalive; anything else long enough to hold SPI and sequence number is ESP. IKE and
		 * keepalives are the gateway's own and go to its stack, whatever the SPD says (as IKE's
		 * sockets bypass policy on a Linux gateway). */
		void *data = (void *)(long)ctx->data;
		void *data_end = (void *)(long)ctx->data_end;
		__u32 off = p.l4_off;
		if (off > XDPSEC_MAX_L4_OFF) {
			count(XDPSEC_R_PARSE_L4);
			return XDP_DROP;
		}
		__u32 *pl = data + off + 8;
		if (!((void *)(pl + 2) <= data_end && p.l4_off + 16 <= p.l3_off + p.l3_len && *pl != 0)) {
			count(XDPSEC_R_IN_IKE);
			return XDP_PASS;
		}
		verdict = in_esp(ctx, &p, off + 8, 1);
		if (verdict >= 0)
			return verdict;
	}

	__u16 pid = XDPSEC_NONE_U16;
	struct xdpsec_policy *pol = policy_for(XDPSEC_DIR_IN, &p, &pid, &verdict);
	if (!pol)
		return verdict;
	if (pol->action == XDPSEC_ACT_BYPASS) {
		count(XDPSEC_R_IN_BYPASS);
		return XDP_PASS;
	}
	/* RFC 4301 §5.2: plaintext that a policy says must arrive protected is discarded. */
	count(pol->action == XDPSEC_ACT_PROTECT ? XDPSEC_R_IN_TMPL_MISMATCH : XDPSEC_R_IN_POL_BLOCK);
	return XDP_DROP;
}

/* Types only Go uses: referenced here so they get BTF and bpf2go -type can emit them. */
const struct xdpsec_meta *_meta __attribute__((unused));
const struct xdpsec_acquire *_acquire __attribute__((unused));
const struct xdpsec_flow_key *_flow_key __attribute__((unused));
const struct xdpsec_addr_key *_addr_key __attribute__((unused));
const enum xdpsec_reason *_reason __attribute__((unused));
const enum xdpsec_dir *_dir __attribute__((unused));
const enum xdpsec_action *_action __attribute__((unused));
const enum xdpsec_meta_flags *_meta_flags __attribute__((unused));
const enum xdpsec_sa_flags *_sa_flags __attribute__((unused));
const enum xdpsec_policy_flags *_policy_flags __attribute__((unused));
const enum xdpsec_rule_flags *_rule_flags __attribute__((unused));
const enum xdpsec_flow_outcome *_flow_outcome __attribute__((unused));
const enum xdpsec_worker_error *_worker_error __attribute__((unused));
