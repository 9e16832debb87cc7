/* SPDX-License-Identifier: GPL-2.0-or-later */

#include "test.h"

#include <library.h>
#include <kernel/kernel_ipsec.h>

#include "../xdpsec_spd.h"

static traffic_selector_t *ts(char *cidr, uint8_t proto, uint16_t from,
							  uint16_t to)
{
	return traffic_selector_create_from_cidr(cidr, proto, from, to);
}

static traffic_selector_t *range(char *from_addr, char *to_addr)
{
	return traffic_selector_create_from_string(0, TS_IPV4_ADDR_RANGE,
											   from_addr, 0, to_addr, 0xffff);
}

/** The selector member written for (src, dst), or NULL; destroys both. */
static char *selector(traffic_selector_t *src, traffic_selector_t *dst,
					  char *reason, size_t len)
{
	char *out = NULL;
	jw_t w;

	jw_init(&w);
	jw_object(&w, NULL);
	if (xdpsec_write_selector(&w, src, dst, reason, len))
	{
		jw_object_end(&w);
		out = jw_result(&w, NULL) ? strdup(jw_result(&w, NULL)) : NULL;
	}
	jw_wipe(&w);
	src->destroy(src);
	dst->destroy(dst);
	return out;
}

static void test_selectors(void)
{
	struct {
		traffic_selector_t *src, *dst;
		const char *want;
	} cases[] = {
		{ ts("198.18.1.0/24", 0, 0, 0xffff), ts("198.18.2.0/24", 0, 0, 0xffff),
		  "{\"sel\":{\"src\":\"198.18.1.0/24\",\"dst\":\"198.18.2.0/24\","
		  "\"proto\":0}}" },
		/* a protocol on one side is the selector's */
		{ ts("198.18.1.5/32", 6, 0, 0xffff), ts("198.18.2.0/24", 0, 443, 443),
		  "{\"sel\":{\"src\":\"198.18.1.5/32\",\"dst\":\"198.18.2.0/24\","
		  "\"proto\":6,\"dport\":{\"lo\":443,\"hi\":443}}}" },
		/* port ranges are kept as ranges, not widened to a mask */
		{ ts("2001:2::/48", 17, 1000, 2999), ts("2001:2:0:1::/64", 17, 53, 53),
		  "{\"sel\":{\"src\":\"2001:2::/48\",\"dst\":\"2001:2:0:1::/64\","
		  "\"proto\":17,\"sport\":{\"lo\":1000,\"hi\":2999},"
		  "\"dport\":{\"lo\":53,\"hi\":53}}}" },
		/* ICMP echo request (type 8, any code): type in sport */
		{ ts("198.18.1.0/24", 1, 8 << 8, (8 << 8) | 0xff),
		  ts("198.18.2.0/24", 1, 0, 0xffff),
		  "{\"sel\":{\"src\":\"198.18.1.0/24\",\"dst\":\"198.18.2.0/24\","
		  "\"proto\":1,\"sport\":{\"lo\":8,\"hi\":8}}}" },
		/* ICMPv6 type 1 code 4: code in dport */
		{ ts("2001:2::/48", 58, (1 << 8) | 4, (1 << 8) | 4),
		  ts("2001:2:1::/48", 58, 0, 0xffff),
		  "{\"sel\":{\"src\":\"2001:2::/48\",\"dst\":\"2001:2:1::/48\","
		  "\"proto\":58,\"sport\":{\"lo\":1,\"hi\":1},"
		  "\"dport\":{\"lo\":4,\"hi\":4}}}" },
		/* a range that is no prefix widens to the covering one, as XFRM */
		{ range("198.18.1.10", "198.18.1.20"), ts("0.0.0.0/0", 0, 0, 0xffff),
		  "{\"sel\":{\"src\":\"198.18.1.0/27\",\"dst\":\"0.0.0.0/0\","
		  "\"proto\":0}}" },
	};
	char reason[256], *got;
	size_t i;

	for (i = 0; i < countof(cases); i++)
	{
		got = selector(cases[i].src, cases[i].dst, reason, sizeof(reason));
		CHECK_MSG(got, "case %zu refused: %s", i, reason);
		CHECK_MSG(streq(got, cases[i].want), "case %zu:\n got  %s\n want %s",
				  i, got, cases[i].want);
		free(got);
	}
}

static void test_selector_refusals(void)
{
	char reason[256];

	CHECK(!selector(ts("198.18.1.0/24", 0, 0, 0xffff),
					ts("2001:2::/48", 0, 0, 0xffff), reason, sizeof(reason)));
	CHECK_CONTAINS(reason, "families");
	/* OPAQUE ports: from 0xffff to 0 */
	CHECK(!selector(ts("198.18.1.0/24", 17, 0xffff, 0),
					ts("198.18.2.0/24", 17, 0, 0xffff), reason,
					sizeof(reason)));
	CHECK_CONTAINS(reason, "OPAQUE");
}

typedef struct {
	kernel_ipsec_policy_id_t id;
	kernel_ipsec_manage_policy_t data;
	ipsec_sa_cfg_t sa;
	host_t *src, *dst;
} policy_args_t;

static void args_init(policy_args_t *a, policy_dir_t dir, policy_type_t type,
					  policy_priority_t prio, uint32_t reqid, ipsec_mode_t mode)
{
	memset(a, 0, sizeof(*a));
	a->src = host_create_from_string("198.19.0.1", 500);
	a->dst = host_create_from_string("198.19.0.2", 500);
	a->sa = (ipsec_sa_cfg_t){
		.mode = mode,
		.reqid = reqid,
		.esp = { .use = TRUE, .spi = htonl(0xc0000001) },
	};
	a->id = (kernel_ipsec_policy_id_t){
		.dir = dir,
		.src_ts = ts("198.18.1.0/24", 0, 0, 0xffff),
		.dst_ts = ts("198.18.2.0/24", 0, 0, 0xffff),
	};
	a->data = (kernel_ipsec_manage_policy_t){
		.type = type,
		.prio = prio,
		.src = a->src,
		.dst = a->dst,
		.sa = &a->sa,
	};
}

static void args_free(policy_args_t *a)
{
	a->id.src_ts->destroy(a->id.src_ts);
	a->id.dst_ts->destroy(a->id.dst_ts);
	a->src->destroy(a->src);
	a->dst->destroy(a->dst);
}

/** The policy document for a, or NULL with reason. */
static char *policy(policy_args_t *a, char *reason, size_t len)
{
	char *out = NULL;
	jw_t w;

	jw_init(&w);
	if (xdpsec_write_policy(&w, &a->id, &a->data, reason, len) &&
		jw_result(&w, NULL))
	{
		out = strdup(jw_result(&w, NULL));
	}
	jw_wipe(&w);
	return out;
}

static void test_policies(void)
{
	char reason[256], *got, want[1024];
	policy_args_t a;
	uint32_t prio;

	/* an installed CHILD_SA's outbound policy protects with its reqid and
	 * the tunnel's endpoints */
	args_init(&a, POLICY_OUT, POLICY_IPSEC, POLICY_PRIORITY_DEFAULT, 7,
			  MODE_TUNNEL);
	prio = xdpsec_auto_priority(a.id.src_ts, a.id.dst_ts,
								POLICY_PRIORITY_DEFAULT);
	got = policy(&a, reason, sizeof(reason));
	args_free(&a);
	CHECK_MSG(got, "%s", reason);
	snprintf(want, sizeof(want), "{\"owner\":\"ike\",\"dir\":\"out\","
			 "\"priority\":%u,\"action\":\"protect\",\"sel\":{\"src\":"
			 "\"198.18.1.0/24\",\"dst\":\"198.18.2.0/24\",\"proto\":0},"
			 "\"tmpl\":{\"reqid\":7,\"proto\":50,\"mode\":\"tunnel\","
			 "\"src\":\"198.19.0.1\",\"dst\":\"198.19.0.2\"}}", prio);
	CHECK_STR(got, want);
	free(got);

	/* fwd and transport mode: no endpoints in the template */
	args_init(&a, POLICY_FWD, POLICY_IPSEC, POLICY_PRIORITY_DEFAULT, 7,
			  MODE_TRANSPORT);
	got = policy(&a, reason, sizeof(reason));
	args_free(&a);
	CHECK_MSG(got, "%s", reason);
	CHECK_CONTAINS(got, "\"dir\":\"fwd\"");
	CHECK_CONTAINS(got, "\"tmpl\":{\"reqid\":7,\"proto\":50,\"mode\":"
				   "\"transport\"}}");
	free(got);

	/* charon's "outbound" FWD policy: IPsec type without reqid lets pass */
	args_init(&a, POLICY_FWD, POLICY_IPSEC, POLICY_PRIORITY_ROUTED, 0,
			  MODE_TUNNEL);
	got = policy(&a, reason, sizeof(reason));
	args_free(&a);
	CHECK_MSG(got, "%s", reason);
	CHECK_CONTAINS(got, "\"action\":\"bypass\"");
	CHECK(!strstr(got, "tmpl"));
	free(got);

	args_init(&a, POLICY_IN, POLICY_PASS, POLICY_PRIORITY_PASS, 0,
			  MODE_PASS);
	got = policy(&a, reason, sizeof(reason));
	args_free(&a);
	CHECK_MSG(got, "%s", reason);
	CHECK_CONTAINS(got, "\"action\":\"bypass\"");
	free(got);

	args_init(&a, POLICY_OUT, POLICY_DROP, POLICY_PRIORITY_FALLBACK, 0,
			  MODE_DROP);
	a.data.manual_prio = 4242;
	got = policy(&a, reason, sizeof(reason));
	args_free(&a);
	CHECK_MSG(got, "%s", reason);
	CHECK_CONTAINS(got, "\"priority\":4242,\"action\":\"discard\"");
	free(got);
}

static void test_policy_refusals(void)
{
	char reason[256];
	policy_args_t a;

	args_init(&a, POLICY_OUT, POLICY_IPSEC, POLICY_PRIORITY_DEFAULT, 1,
			  MODE_TUNNEL);
	a.id.mark = (mark_t){ .value = 42, .mask = 0xffffffff };
	CHECK(!policy(&a, reason, sizeof(reason)));
	CHECK_CONTAINS(reason, "marks are not supported");
	a.id.mark = (mark_t){};
	a.id.if_id = 7;
	CHECK(!policy(&a, reason, sizeof(reason)));
	CHECK_CONTAINS(reason, "if_id");
	a.id.if_id = 0;
	a.id.interface = "eth0";
	CHECK(!policy(&a, reason, sizeof(reason)));
	CHECK_CONTAINS(reason, "bound to an interface");
	a.id.interface = NULL;
	a.sa.esp.use = FALSE;
	a.sa.ah.use = TRUE;
	CHECK(!policy(&a, reason, sizeof(reason)));
	CHECK_CONTAINS(reason, "AH is not supported");
	a.sa.ah.use = FALSE;
	a.sa.esp.use = TRUE;
	a.sa.mode = MODE_BEET;
	CHECK(!policy(&a, reason, sizeof(reason)));
	CHECK_CONTAINS(reason, "BEET");
	args_free(&a);
}

static void test_priorities(void)
{
	traffic_selector_t *net = ts("198.18.1.0/24", 0, 0, 0xffff);
	traffic_selector_t *wide = ts("198.18.0.0/16", 0, 0, 0xffff);
	traffic_selector_t *host = ts("198.18.2.1/32", 0, 0, 0xffff);
	traffic_selector_t *tcp = ts("198.18.2.1/32", 6, 0, 0xffff);
	traffic_selector_t *port = ts("198.18.2.1/32", 6, 80, 80);
	traffic_selector_t *ports = ts("198.18.2.1/32", 6, 1024, 2047);
	traffic_selector_t *any = ts("0.0.0.0/0", 0, 0, 0xffff);
	traffic_selector_t *any6 = ts("::/0", 0, 0, 0xffff);
	traffic_selector_t *host6 = ts("2001:2::1/128", 6, 80, 80);
	uint32_t def, trap, pass, fallback;

	def = xdpsec_auto_priority(net, host, POLICY_PRIORITY_DEFAULT);
	trap = xdpsec_auto_priority(net, host, POLICY_PRIORITY_ROUTED);
	pass = xdpsec_auto_priority(net, host, POLICY_PRIORITY_PASS);
	fallback = xdpsec_auto_priority(net, host, POLICY_PRIORITY_FALLBACK);
	/* lower wins: pass before installed before trap before fallback */
	CHECK_INT(trap, def + 1);
	CHECK(pass < def && def < fallback);
	/* the classes never overlap, even at the extremes of specificity */
	CHECK(xdpsec_auto_priority(any6, any6, POLICY_PRIORITY_PASS) <
		  xdpsec_auto_priority(host6, host6, POLICY_PRIORITY_DEFAULT));
	CHECK(xdpsec_auto_priority(any, any, POLICY_PRIORITY_ROUTED) <
		  xdpsec_auto_priority(host6, host6, POLICY_PRIORITY_FALLBACK));
	/* the more specific selector wins within a class */
	CHECK(xdpsec_auto_priority(wide, host, POLICY_PRIORITY_DEFAULT) > def);
	CHECK(xdpsec_auto_priority(net, tcp, POLICY_PRIORITY_DEFAULT) < def);
	CHECK(xdpsec_auto_priority(net, port, POLICY_PRIORITY_DEFAULT) <
		  xdpsec_auto_priority(net, ports, POLICY_PRIORITY_DEFAULT));
	CHECK(xdpsec_auto_priority(net, ports, POLICY_PRIORITY_DEFAULT) <
		  xdpsec_auto_priority(net, tcp, POLICY_PRIORITY_DEFAULT));
	/* XFRM's numbers, so that manual priorities mean the same */
	CHECK_INT(xdpsec_auto_priority(net, net, POLICY_PRIORITY_DEFAULT),
			  400000 - 48 * 512 - 1);
	net->destroy(net);
	wide->destroy(wide);
	host->destroy(host);
	tcp->destroy(tcp);
	port->destroy(port);
	ports->destroy(ports);
	any->destroy(any);
	any6->destroy(any6);
	host6->destroy(host6);
}

static void test_bypass(void)
{
	jw_t w;

	jw_init(&w);
	CHECK(xdpsec_write_bypass(&w, AF_INET, 4500, POLICY_IN));
	CHECK_STR(jw_result(&w, NULL), "{\"owner\":\"ike\",\"dir\":\"in\","
			  "\"priority\":1,\"action\":\"bypass\",\"sel\":{\"src\":"
			  "\"0.0.0.0/0\",\"dst\":\"0.0.0.0/0\",\"proto\":17,"
			  "\"dport\":{\"lo\":4500,\"hi\":4500}}}");
	jw_wipe(&w);
	jw_init(&w);
	CHECK(xdpsec_write_bypass(&w, AF_INET6, 500, POLICY_OUT));
	CHECK_CONTAINS(jw_result(&w, NULL), "\"src\":\"::/0\",\"dst\":\"::/0\","
				   "\"proto\":17,\"sport\":{\"lo\":500,\"hi\":500}");
	jw_wipe(&w);
}

const test_t spd_tests[] = {
	{ "spd/selectors", test_selectors },
	{ "spd/selector-refusals", test_selector_refusals },
	{ "spd/policies", test_policies },
	{ "spd/policy-refusals", test_policy_refusals },
	{ "spd/priorities", test_priorities },
	{ "spd/bypass", test_bypass },
	{ NULL, NULL },
};
