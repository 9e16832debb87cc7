/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Translation of charon's policies (kernel_ipsec_policy_id_t and
 * kernel_ipsec_manage_policy_t) and traffic selectors into xdpsec's policy
 * JSON (docs/ike-api.md), and the priorities charon's policies get.
 */

#ifndef XDPSEC_SPD_H_
#define XDPSEC_SPD_H_

#include <kernel/kernel_ipsec.h>

#include "xdpsec_json.h"

/** Priority of the bypass policies of charon's IKE sockets: before any other. */
#define XDPSEC_BYPASS_PRIORITY 1

/** Spacing of the priority classes (pass, default/trap, fallback). */
#define XDPSEC_PRIO_BASE 200000

/**
 * The priority a policy gets when charon sets none (manual_prio 0), in the
 * numbering of Linux XFRM and xdpsec (lower wins): the class first, then the
 * more specific selector (longer prefixes, a protocol, narrower ports), and an
 * installed CHILD_SA's policy before the trap policy of the same selector.
 */
uint32_t xdpsec_auto_priority(traffic_selector_t *src_ts,
							  traffic_selector_t *dst_ts,
							  policy_priority_t prio);

/**
 * Write member "sel": the selector of packets from src_ts to dst_ts.
 * Ranges that are not a prefix are widened to the smallest covering prefix
 * (as XFRM does); returns false with a reason for what xdpsec cannot
 * express (mixed families, opaque ports).
 */
bool xdpsec_write_selector(jw_t *w, traffic_selector_t *src_ts,
						   traffic_selector_t *dst_ts, char *reason,
						   size_t reasonlen);

/**
 * Write the policy object charon asks for. The document is also the
 * policy's identity: charon passes the same arguments to del_policy.
 */
bool xdpsec_write_policy(jw_t *w, kernel_ipsec_policy_id_t *id,
						 kernel_ipsec_manage_policy_t *data, char *reason,
						 size_t reasonlen);

/**
 * Write the bypass policy of an IKE socket: UDP to (in) or from (out) port.
 */
bool xdpsec_write_bypass(jw_t *w, int family, uint16_t port,
						 policy_dir_t dir);

/** Key of the (direction, selector) pair of a policy, for queries. */
bool xdpsec_write_selector_key(jw_t *w, policy_dir_t dir,
							   traffic_selector_t *src_ts,
							   traffic_selector_t *dst_ts, char *reason,
							   size_t reasonlen);

/** Textual form of an address (no port). */
void xdpsec_addr(host_t *host, char *buf, size_t buflen);

#endif /** XDPSEC_SPD_H_ */
