/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The card's maps. Sizes here are the defaults; the loader overrides max_entries from its configuration
 * before loading. The names are the pin names under /sys/fs/bpf/xdpsec/<instance>/. */
#ifndef XDPSEC_MAPS_H
#define XDPSEC_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xdpsec.h"

#define XDPSEC_DEFAULT_POLICIES 16384
#define XDPSEC_DEFAULT_SAS 65536

/* Capacities the program must know (the bound of the SPD lookup); set by the loader with the map sizes. */
volatile const __u32 policy_capacity = XDPSEC_DEFAULT_POLICIES;
/* UDP destination port of ESP-in-UDP (RFC 3948). */
volatile const __u16 encap_port = 4500;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xdpsec_sa);
	__uint(max_entries, XDPSEC_DEFAULT_SAS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sa_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct xdpsec_sa_key);
	__type(value, __u32); /* SA index */
	__uint(max_entries, XDPSEC_DEFAULT_SAS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sa_in_lookup SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xdpsec_policy);
	__uint(max_entries, XDPSEC_DEFAULT_POLICIES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} policy_table SEC(".maps");

/* The SPD's tuple space (xdpsec.h). spd_tuples: the tuple lists, indexed (dir * 2 + buffer) * 2 + family.
 * spd_buckets: the buckets of both buffers; each policy is in one bucket per buffer, and in a second (its
 * fragment entry) when its tuple hashes ports; entries are allocated as written (no prealloc).
 * spd_chain: the further rules of buckets holding several, in blocks of XDPSEC_RULE_BLOCK; a region of
 * 2 * policy_capacity rules per (dir, buffer) (a bucket's rules after its first, at most two per policy). spd_filter: a bit array of
 * 2^filter_bits bits per list (the index of spd_tuples), as 64-bit words. */
volatile const __u32 filter_bits = 19;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xdpsec_tuple_list);
	__uint(max_entries, 8);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} spd_tuples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct xdpsec_bucket_key);
	__type(value, struct xdpsec_bucket);
	__uint(max_entries, 4 * XDPSEC_DEFAULT_POLICIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} spd_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xdpsec_rule_block);
	__uint(max_entries, XDPSEC_DEFAULT_POLICIES);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} spd_chain SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 8 << (19 - 6));
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} spd_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32); /* enum xdpsec_dir */
	__type(value, struct xdpsec_spd);
	__uint(max_entries, 2);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} spd_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xdpsec_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} card_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct xdpsec_flow_key);
	__type(value, struct xdpsec_flow);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flow_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct xdpsec_sa_stats);
	__uint(max_entries, XDPSEC_DEFAULT_SAS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sa_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct xdpsec_policy_stats);
	__uint(max_entries, XDPSEC_DEFAULT_POLICIES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} policy_stats SEC(".maps");

_Static_assert(XDPSEC_R_MAX <= XDPSEC_REASON_SLOTS, "more reasons than the reasons map holds");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32); /* enum xdpsec_reason */
	__type(value, __u64);
	__uint(max_entries, XDPSEC_REASON_SLOTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} reasons SEC(".maps");

/* The gateway's own addresses (struct xdpsec_addr_key → 1), kept current by the daemon from netlink. */
#define XDPSEC_LOCAL_ADDRS 1024

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct xdpsec_addr_key);
	__type(value, __u8);
	__uint(max_entries, XDPSEC_LOCAL_ADDRS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} local_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xdpsec_worker_stats);
	__uint(max_entries, XDPSEC_DEFAULT_SAS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} worker_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} acquire_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64); /* CLOCK_MONOTONIC of the last ACQUIRE per policy */
	__uint(max_entries, XDPSEC_DEFAULT_POLICIES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} acquire_last SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__type(key, __u32); /* rx queue index */
	__type(value, __u32);
	__uint(max_entries, 64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xsks_out SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xsks_in SEC(".maps");

#endif
