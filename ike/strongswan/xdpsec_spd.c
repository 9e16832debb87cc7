/* SPDX-License-Identifier: GPL-2.0-or-later */

#include "xdpsec_spd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>

void xdpsec_addr(host_t *host, char *buf, size_t buflen)
{
	chunk_t a = host->get_address(host);
	int family = host->get_family(host);

	if (!inet_ntop(family, a.ptr, buf, buflen))
	{
		snprintf(buf, buflen, "invalid");
	}
}

/** Number of leading bits lo and hi share: how narrow a port range is. */
static int range_bits(uint16_t lo, uint16_t hi)
{
	int bits = 0;
	uint16_t mask = 0x8000;

	while (mask && (lo & mask) == (hi & mask))
	{
		bits++;
		mask >>= 1;
	}
	return bits;
}

static bool is_icmp(uint8_t proto)
{
	return proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6;
}

static uint8_t selector_proto(traffic_selector_t *src, traffic_selector_t *dst)
{
	/* one side may say "any", the other is the more restrictive */
	return max(src->get_protocol(src), dst->get_protocol(dst));
}

static bool any_port(traffic_selector_t *ts)
{
	return ts->get_from_port(ts) == 0 && ts->get_to_port(ts) == 0xffff;
}

uint32_t xdpsec_auto_priority(traffic_selector_t *src_ts,
							  traffic_selector_t *dst_ts,
							  policy_priority_t prio)
{
	uint32_t priority = XDPSEC_PRIO_BASE;
	uint8_t plen_s = 0, plen_d = 0, proto;
	int port_bits = 0;
	host_t *net;

	switch (prio)
	{
		case POLICY_PRIORITY_FALLBACK:
			priority += 2 * XDPSEC_PRIO_BASE;
			break;
		case POLICY_PRIORITY_ROUTED:
		case POLICY_PRIORITY_DEFAULT:
			priority += XDPSEC_PRIO_BASE;
			break;
		case POLICY_PRIORITY_PASS:
			break;
	}
	net = NULL;
	src_ts->to_subnet(src_ts, &net, &plen_s);
	DESTROY_IF(net);
	net = NULL;
	dst_ts->to_subnet(dst_ts, &net, &plen_d);
	DESTROY_IF(net);
	proto = selector_proto(src_ts, dst_ts);
	if (!any_port(src_ts))
	{
		port_bits += range_bits(src_ts->get_from_port(src_ts),
								src_ts->get_to_port(src_ts));
	}
	if (!any_port(dst_ts))
	{
		port_bits += range_bits(dst_ts->get_from_port(dst_ts),
								dst_ts->get_to_port(dst_ts));
	}
	/* at most 256 * 512 + 256 + 32 * 4 + 1 = 131457 < XDPSEC_PRIO_BASE, so
	 * the classes never overlap */
	priority -= (plen_s + plen_d) * 512;
	priority -= proto ? 256 : 0;
	priority -= port_bits * 4;
	/* an installed CHILD_SA's policy wins over the trap policy it replaces */
	priority -= prio != POLICY_PRIORITY_ROUTED;
	return priority;
}

static bool write_prefix(jw_t *w, const char *key, traffic_selector_t *ts)
{
	char addr[INET6_ADDRSTRLEN], buf[INET6_ADDRSTRLEN + 4];
	uint8_t plen = 0;
	host_t *net = NULL;

	ts->to_subnet(ts, &net, &plen);
	if (!net)
	{
		return false;
	}
	xdpsec_addr(net, addr, sizeof(addr));
	net->destroy(net);
	snprintf(buf, sizeof(buf), "%s/%u", addr, plen);
	jw_string(w, key, buf);
	return true;
}

static void write_range(jw_t *w, const char *key, uint16_t lo, uint16_t hi)
{
	jw_object(w, key);
	jw_uint(w, "lo", lo);
	jw_uint(w, "hi", hi);
	jw_object_end(w);
}

bool xdpsec_write_selector(jw_t *w, traffic_selector_t *src_ts,
						   traffic_selector_t *dst_ts, char *reason,
						   size_t reasonlen)
{
	uint8_t proto = selector_proto(src_ts, dst_ts);
	traffic_selector_t *icmp;

	if (src_ts->get_type(src_ts) != dst_ts->get_type(dst_ts))
	{
		snprintf(reason, reasonlen, "traffic selectors of different address "
				 "families");
		return false;
	}
	if (src_ts->get_from_port(src_ts) > src_ts->get_to_port(src_ts) ||
		dst_ts->get_from_port(dst_ts) > dst_ts->get_to_port(dst_ts))
	{
		snprintf(reason, reasonlen, "OPAQUE ports cannot be expressed in "
				 "xdpsec's selectors");
		return false;
	}
	jw_object(w, "sel");
	if (!write_prefix(w, "src", src_ts) || !write_prefix(w, "dst", dst_ts))
	{
		snprintf(reason, reasonlen, "traffic selector without a subnet");
		return false;
	}
	jw_uint(w, "proto", proto);
	if (is_icmp(proto))
	{
		/* charon keeps ICMP type and code in the port of one side (type in
		 * the upper byte); xdpsec's selector holds the type in sport and the
		 * code in dport, as ip xfrm does */
		icmp = !any_port(src_ts) ? src_ts : !any_port(dst_ts) ? dst_ts : NULL;
		if (icmp)
		{
			uint16_t from = icmp->get_from_port(icmp);
			uint16_t to = icmp->get_to_port(icmp);
			uint8_t type_lo = traffic_selector_icmp_type(from);
			uint8_t type_hi = traffic_selector_icmp_type(to);

			write_range(w, "sport", type_lo, type_hi);
			if (type_lo == type_hi &&
				!(traffic_selector_icmp_code(from) == 0 &&
				  traffic_selector_icmp_code(to) == 0xff))
			{
				write_range(w, "dport", traffic_selector_icmp_code(from),
							traffic_selector_icmp_code(to));
			}
		}
	}
	else
	{
		if (!any_port(src_ts))
		{
			write_range(w, "sport", src_ts->get_from_port(src_ts),
						src_ts->get_to_port(src_ts));
		}
		if (!any_port(dst_ts))
		{
			write_range(w, "dport", dst_ts->get_from_port(dst_ts),
						dst_ts->get_to_port(dst_ts));
		}
	}
	jw_object_end(w);
	return true;
}

static const char *dir_name(policy_dir_t dir)
{
	switch (dir)
	{
		case POLICY_IN:
			return "in";
		case POLICY_OUT:
			return "out";
		default:
			return "fwd";
	}
}

bool xdpsec_write_selector_key(jw_t *w, policy_dir_t dir,
							   traffic_selector_t *src_ts,
							   traffic_selector_t *dst_ts, char *reason,
							   size_t reasonlen)
{
	jw_object(w, NULL);
	jw_string(w, "dir", dir_name(dir));
	if (!xdpsec_write_selector(w, src_ts, dst_ts, reason, reasonlen))
	{
		return false;
	}
	jw_object_end(w);
	return true;
}

/** Say why a policy's extras have no meaning on the card. */
static bool check_extras(kernel_ipsec_policy_id_t *id, char *reason,
						 size_t reasonlen)
{
	if (id->mark.value || id->mark.mask)
	{
		snprintf(reason, reasonlen, "marks are not supported: xdpsec selects "
				 "policies by addresses, protocol and ports only");
		return false;
	}
	if (id->if_id)
	{
		snprintf(reason, reasonlen, "interface IDs (if_id, XFRM interfaces) "
				 "are not supported by xdpsec");
		return false;
	}
	if (id->label)
	{
		snprintf(reason, reasonlen, "security labels are not supported by "
				 "xdpsec");
		return false;
	}
	if (id->interface)
	{
		snprintf(reason, reasonlen, "policies bound to an interface (%s) are "
				 "not supported: xdpsec's card decides by its protected and "
				 "wire interfaces", id->interface);
		return false;
	}
	return true;
}

bool xdpsec_write_policy(jw_t *w, kernel_ipsec_policy_id_t *id,
						 kernel_ipsec_manage_policy_t *data, char *reason,
						 size_t reasonlen)
{
	char addr[INET6_ADDRSTRLEN];
	const char *action;
	ipsec_sa_cfg_t *sa = data->sa;
	bool protect = false;

	if (!check_extras(id, reason, reasonlen))
	{
		return false;
	}
	switch (data->type)
	{
		case POLICY_IPSEC:
			if (sa && sa->ah.use)
			{
				snprintf(reason, reasonlen, "AH is not supported: xdpsec "
						 "offloads ESP only");
				return false;
			}
			if (sa && sa->mode != MODE_TUNNEL && sa->mode != MODE_TRANSPORT)
			{
				snprintf(reason, reasonlen, "mode %s is not supported",
						 enum_to_name(ipsec_mode_names, sa->mode) ?: "?");
				return false;
			}
			/* without a reqid it only lets traffic pass (charon's "outbound"
			 * FWD policies), as in XFRM where it has no template */
			protect = sa && sa->reqid;
			action = protect ? "protect" : "bypass";
			break;
		case POLICY_PASS:
			action = "bypass";
			break;
		case POLICY_DROP:
			action = "discard";
			break;
		default:
			snprintf(reason, reasonlen, "unknown policy type %d", data->type);
			return false;
	}

	jw_object(w, NULL);
	jw_string(w, "owner", "ike");
	jw_string(w, "dir", dir_name(id->dir));
	jw_uint(w, "priority", data->manual_prio ? data->manual_prio :
			xdpsec_auto_priority(id->src_ts, id->dst_ts, data->prio));
	jw_string(w, "action", action);
	if (!xdpsec_write_selector(w, id->src_ts, id->dst_ts, reason, reasonlen))
	{
		return false;
	}
	if (protect)
	{
		jw_object(w, "tmpl");
		jw_uint(w, "reqid", sa->reqid);
		jw_uint(w, "proto", IPPROTO_ESP);
		jw_string(w, "mode", sa->mode == MODE_TUNNEL ? "tunnel" : "transport");
		if (sa->mode == MODE_TUNNEL && data->src && data->dst)
		{
			/* the tunnel's endpoints narrow the template, as in XFRM */
			xdpsec_addr(data->src, addr, sizeof(addr));
			jw_string(w, "src", addr);
			xdpsec_addr(data->dst, addr, sizeof(addr));
			jw_string(w, "dst", addr);
		}
		jw_object_end(w);
	}
	jw_object_end(w);
	return true;
}

bool xdpsec_write_bypass(jw_t *w, int family, uint16_t port,
						 policy_dir_t dir)
{
	const char *any = family == AF_INET6 ? "::/0" : "0.0.0.0/0";

	jw_object(w, NULL);
	jw_string(w, "owner", "ike");
	jw_string(w, "dir", dir_name(dir));
	jw_uint(w, "priority", XDPSEC_BYPASS_PRIORITY);
	jw_string(w, "action", "bypass");
	jw_object(w, "sel");
	jw_string(w, "src", any);
	jw_string(w, "dst", any);
	jw_uint(w, "proto", IPPROTO_UDP);
	/* IKE arriving for charon's port, and charon's own IKE leaving from it */
	write_range(w, dir == POLICY_IN ? "dport" : "sport", port, port);
	jw_object_end(w);
	jw_object_end(w);
	return true;
}
