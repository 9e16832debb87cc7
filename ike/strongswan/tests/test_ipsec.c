/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * charon's kernel_ipsec_t as kernel-xdpsec implements it, driven the way
 * charon drives it, against the fake daemon: what reaches the daemon, what
 * charon learns back (expires, acquires, counters), and what happens when the
 * daemon is absent, slow, restarting or losing events.
 */

#define _GNU_SOURCE

#include "test.h"
#include "fake.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <daemon.h>
#include <threading/mutex.h>

#include "../kernel_xdpsec_ipsec.h"
#include "../xdpsec_json.h"
#include "../xdpsec_spd.h"

#define MAX_LOG 512
#define MAX_RAISED 64

typedef struct {
	logger_t logger;
	kernel_listener_t listener;
	mutex_t *lock;
	char *log[MAX_LOG];
	int logs;
	struct {
		uint32_t spi;
		char dst[64];
		bool hard;
	} expires[MAX_RAISED];
	int nexpires;
	struct {
		uint32_t reqid;
		char src[80];
		char dst[80];
		uint8_t proto;
		uint16_t sport_lo, sport_hi, dport_lo, dport_hi;
	} acquires[MAX_RAISED];
	int nacquires;
} observer_t;

static observer_t obs;

static void obs_log(logger_t *this, debug_t group, level_t level, int thread,
					ike_sa_t *ike_sa, const char *message)
{
	(void)this;
	(void)group;
	(void)level;
	(void)thread;
	(void)ike_sa;
	obs.lock->lock(obs.lock);
	if (obs.logs < MAX_LOG)
	{
		obs.log[obs.logs++] = strdup(message);
	}
	obs.lock->unlock(obs.lock);
	if (getenv("KERNEL_XDPSEC_TEST_LOG"))
	{
		fprintf(stderr, "      log: %s\n", message);
	}
}

static level_t obs_level(logger_t *this, debug_t group)
{
	(void)this;
	return group == DBG_KNL ? LEVEL_CTRL : LEVEL_SILENT;
}

static bool obs_expire(kernel_listener_t *this, uint8_t protocol, uint32_t spi,
					   host_t *dst, bool hard)
{
	(void)this;
	obs.lock->lock(obs.lock);
	if (protocol == IPPROTO_ESP && obs.nexpires < MAX_RAISED)
	{
		obs.expires[obs.nexpires].spi = ntohl(spi);
		xdpsec_addr(dst, obs.expires[obs.nexpires].dst, 64);
		obs.expires[obs.nexpires].hard = hard;
		obs.nexpires++;
	}
	obs.lock->unlock(obs.lock);
	return TRUE;
}

static bool obs_acquire(kernel_listener_t *this, uint32_t reqid,
						kernel_acquire_data_t *data)
{
	(void)this;
	obs.lock->lock(obs.lock);
	if (obs.nacquires < MAX_RAISED)
	{
		typeof(obs.acquires[0]) *a = &obs.acquires[obs.nacquires];
		char net[48];
		uint8_t plen = 0;
		host_t *h = NULL;

		a->reqid = reqid;
		if (data->src && data->dst)
		{
			data->src->to_subnet(data->src, &h, &plen);
			xdpsec_addr(h, net, sizeof(net));
			snprintf(a->src, sizeof(a->src), "%s/%u", net, plen);
			DESTROY_IF(h);
			data->dst->to_subnet(data->dst, &h, &plen);
			xdpsec_addr(h, net, sizeof(net));
			snprintf(a->dst, sizeof(a->dst), "%s/%u", net, plen);
			DESTROY_IF(h);
			a->proto = data->dst->get_protocol(data->dst);
			a->sport_lo = data->src->get_from_port(data->src);
			a->sport_hi = data->src->get_to_port(data->src);
			a->dport_lo = data->dst->get_from_port(data->dst);
			a->dport_hi = data->dst->get_to_port(data->dst);
		}
		obs.nacquires++;
	}
	obs.lock->unlock(obs.lock);
	return TRUE;
}

static void obs_reset(void)
{
	int i;

	if (!obs.lock)
	{
		obs.lock = mutex_create(MUTEX_TYPE_DEFAULT);
		obs.logger.log = obs_log;
		obs.logger.get_level = obs_level;
		obs.listener.expire = obs_expire;
		obs.listener.acquire = obs_acquire;
		charon->bus->add_logger(charon->bus, &obs.logger);
		charon->kernel->add_listener(charon->kernel, &obs.listener);
	}
	obs.lock->lock(obs.lock);
	for (i = 0; i < obs.logs; i++)
	{
		free(obs.log[i]);
	}
	obs.logs = obs.nexpires = obs.nacquires = 0;
	obs.lock->unlock(obs.lock);
}

static bool logged(const char *what)
{
	bool found = false;
	int i;

	obs.lock->lock(obs.lock);
	for (i = 0; i < obs.logs && !found; i++)
	{
		found = strstr(obs.log[i], what) != NULL;
	}
	obs.lock->unlock(obs.lock);
	return found;
}

static bool logged_cond(void *what)
{
	return logged(what);
}

static int count_expires(void)
{
	int n;

	obs.lock->lock(obs.lock);
	n = obs.nexpires;
	obs.lock->unlock(obs.lock);
	return n;
}

static bool expires_reach(void *n)
{
	return count_expires() >= *(int*)n;
}

static kernel_ipsec_t *backend(fake_t *f)
{
	kernel_xdpsec_ipsec_t *k;

	lib->settings->set_str(lib->settings, "charon.plugins.kernel-xdpsec.socket",
						   f->path);
	k = kernel_xdpsec_ipsec_create();
	return k ? &k->interface : NULL;
}

/** The SA of the fake with this SPI, or NULL (caller puts it). */
static json_object *fake_sa(fake_t *f, uint32_t spi)
{
	json_object *st = fake_call(f, "GET", "/_fake/state", NULL, NULL);
	json_object *sas = xj_member(st, "sas", json_type_array), *found = NULL;
	size_t i;
	uint64_t v;

	for (i = 0; sas && i < json_object_array_length(sas); i++)
	{
		json_object *sa = json_object_array_get_idx(sas, i);

		if (xj_uint(sa, "spi", &v) && v == spi)
		{
			found = json_object_get(sa);
		}
	}
	json_object_put(st);
	return found;
}

/**
 * How many requests to path the fake received since the last call (path
 * ending in '?' or '=' is a prefix, else the whole target).
 */
static int fake_requests(fake_t *f, const char *path)
{
	json_object *reqs = fake_call(f, "POST", "/_fake/requests", "{}", NULL);
	size_t i;
	int n = 0;

	for (i = 0; reqs && i < json_object_array_length(reqs); i++)
	{
		const char *p = xj_str(json_object_array_get_idx(reqs, i), "path");

		size_t len = strlen(path);
		bool prefix = len && (path[len - 1] == '?' || path[len - 1] == '=');

		if (p && (prefix ? strncmp(p, path, len) == 0 : streq(p, path)))
		{
			n++;
		}
	}
	json_object_put(reqs);
	return n;
}

typedef struct {
	kernel_ipsec_sa_id_t id;
	kernel_ipsec_add_sa_t data;
	lifetime_cfg_t lft;
	uint8_t enc[36], integ[32];
	host_t *src, *dst;
	traffic_selector_t *ts;
	linked_list_t *tss;
} sa_args_t;

static void sa_args(sa_args_t *a, uint32_t spi, bool inbound, bool encap)
{
	memset(a, 0, sizeof(*a));
	a->src = host_create_from_string(inbound ? "198.19.0.2" : "198.19.0.1",
									 4500);
	a->dst = host_create_from_string(inbound ? "198.19.0.1" : "198.19.0.2",
									 encap ? 4501 : 4500);
	a->ts = traffic_selector_create_from_cidr("198.18.0.0/15", 0, 0, 0xffff);
	a->tss = linked_list_create_with_items(a->ts, NULL);
	memset(a->enc, 0xa5, sizeof(a->enc));
	memset(a->integ, 0x5a, sizeof(a->integ));
	a->lft = (lifetime_cfg_t){
		.time = { .life = 3600, .rekey = 3000 },
		.bytes = { .life = 1000000, .rekey = 900000 },
	};
	a->id = (kernel_ipsec_sa_id_t){
		.src = a->src,
		.dst = a->dst,
		.spi = htonl(spi),
		.proto = IPPROTO_ESP,
	};
	a->data = (kernel_ipsec_add_sa_t){
		.reqid = 3,
		.mode = MODE_TUNNEL,
		.src_ts = a->tss,
		.dst_ts = a->tss,
		.lifetime = &a->lft,
		.enc_alg = ENCR_AES_GCM_ICV16,
		.enc_key = chunk_create(a->enc, 20),
		.int_alg = AUTH_UNDEFINED,
		.replay_window = 128,
		.encap = encap,
		.esn = TRUE,
		.copy_df = TRUE,
		.copy_ecn = TRUE,
		.copy_dscp = DSCP_COPY_OUT_ONLY,
		.inbound = inbound,
	};
}

static void sa_args_free(sa_args_t *a)
{
	a->src->destroy(a->src);
	a->dst->destroy(a->dst);
	a->tss->destroy_offset(a->tss, offsetof(traffic_selector_t, destroy));
}

/* absent daemon: calls fail at once with the reason in charon's log, and the
 * first call after it came up succeeds */
static void test_daemon_absent(void)
{
	kernel_ipsec_t *k;
	host_t *src, *dst;
	uint32_t spi = 0;
	int64_t t0, took;
	fake_t f;

	obs_reset();
	fake_init(&f, "ipsec-absent");
	k = backend(&f);
	CHECK(k);
	src = host_create_from_string("198.19.0.2", 0);
	dst = host_create_from_string("198.19.0.1", 0);
	t0 = test_now_ms();
	CHECK_INT(k->get_spi(k, src, dst, IPPROTO_ESP, &spi), FAILED);
	took = test_now_ms() - t0;
	/* connect_wait is 300 ms in the tests' strongswan.conf */
	CHECK_MSG(took < 1500, "took %lld ms", (long long)took);
	CHECK(logged("unable to allocate an SPI: connect"));
	CHECK(logged("is the xdpsec daemon running?"));

	CHECK(fake_start(&f, NULL));
	CHECK_INT(k->get_spi(k, src, dst, IPPROTO_ESP, &spi), SUCCESS);
	CHECK(ntohl(spi) >= KERNEL_SPI_MIN && ntohl(spi) <= KERNEL_SPI_MAX);
	CHECK_INT(fake_count(&f, "larvals"), 1);
	k->destroy(k);
	fake_stop(&f);
	src->destroy(src);
	dst->destroy(dst);
}

/* an old daemon without the IKE API is named as such */
static void test_old_daemon(void)
{
	kernel_ipsec_t *k;
	host_t *src, *dst;
	uint32_t spi;
	fake_t f;

	obs_reset();
	fake_init(&f, "ipsec-old");
	CHECK(fake_start(&f, NULL));
	CHECK(fake_post(&f, "/_fake/fault", "{\"path\":\"/v1/info\",\"mode\":"
					"\"status\",\"status\":404,\"count\":100,\"content_type\":"
					"\"text/plain\",\"body\":\"404 page not found\\n\"}"));
	k = backend(&f);
	src = host_create_from_string("198.19.0.2", 0);
	dst = host_create_from_string("198.19.0.1", 0);
	CHECK_INT(k->get_spi(k, src, dst, IPPROTO_ESP, &spi), FAILED);
	CHECK(logged("does not serve xdpsec's IKE API (GET /v1/info: HTTP 404: "
				 "404 page not found)"));
	CHECK_INT(fake_requests(&f, "/v1/spi"), 0);
	k->destroy(k);
	fake_stop(&f);
	src->destroy(src);
	dst->destroy(dst);
}

/* the life of an SA as charon leads it: SPI, add (consuming the larval
 * entry), counters, NAT-T move, delete */
static void test_sa_lifecycle(void)
{
	kernel_ipsec_query_sa_t query = {};
	kernel_ipsec_update_sa_t upd = {};
	kernel_ipsec_del_sa_t del = {};
	json_object *sa, *o;
	kernel_ipsec_t *k;
	sa_args_t in, out;
	uint64_t bytes = 0, packets = 0, v;
	time_t use = 0, now;
	uint32_t spi;
	host_t *new_src;
	char last[64];
	fake_t f;

	obs_reset();
	fake_init(&f, "ipsec-sa");
	CHECK(fake_start(&f, NULL));
	k = backend(&f);
	CHECK(k);
	CHECK_INT(k->get_features(k), KERNEL_ESP_V3_TFC);

	sa_args(&in, 0, true, true);
	CHECK_INT(k->get_spi(k, in.src, in.dst, IPPROTO_ESP, &spi), SUCCESS);
	in.id.spi = spi;
	in.data.update = TRUE;
	CHECK_INT(k->add_sa(k, &in.id, &in.data), SUCCESS);
	CHECK_INT(fake_count(&f, "larvals"), 0);
	sa = fake_sa(&f, ntohl(spi));
	CHECK(sa);
	CHECK_STR(xj_str(sa, "owner"), "ike");
	CHECK_STR(xj_str(sa, "dir"), "in");
	CHECK_STR(xj_str(sa, "src"), "198.19.0.2");
	CHECK_STR(xj_str(sa, "dst"), "198.19.0.1");
	CHECK_STR(xj_str(sa, "mode"), "tunnel");
	CHECK(xj_uint(sa, "reqid", &v) && v == 3);
	CHECK(xj_uint(sa, "replay_window", &v) && v == 128);
	o = xj_member(sa, "aead", json_type_object);
	CHECK_STR(xj_str(o, "alg"), "rfc4106(gcm(aes))");
	CHECK_STR(xj_str(o, "key"), "0xa5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5");
	CHECK(xj_uint(o, "bits", &v) && v == 128);
	o = xj_member(sa, "encap", json_type_object);
	CHECK_STR(xj_str(o, "type"), "espinudp");
	CHECK(xj_uint(o, "sport", &v) && v == 4500);
	CHECK(xj_uint(o, "dport", &v) && v == 4501);
	o = xj_member(sa, "lifetime", json_type_object);
	CHECK(xj_uint(o, "soft_add_seconds", &v) && v == 3000);
	CHECK(xj_uint(o, "hard_add_seconds", &v) && v == 3600);
	CHECK(xj_uint(o, "soft_bytes", &v) && v == 900000);
	CHECK(xj_uint(o, "hard_bytes", &v) && v == 1000000);
	CHECK(json_object_get_boolean(xj_member(sa, "esn", json_type_boolean)));
	CHECK_STR(xj_str(sa, "df"), "copy");
	json_object_put(sa);

	/* an encrypt-then-MAC outbound SA with TFC padding, no encapsulation */
	sa_args(&out, 0xc0000123, false, false);
	out.data.enc_alg = ENCR_AES_CBC;
	out.data.enc_key = chunk_create(out.enc, 32);
	out.data.int_alg = AUTH_HMAC_SHA2_256_128;
	out.data.int_key = chunk_create(out.integ, 32);
	out.data.tfc = 1200;
	out.data.copy_df = FALSE;
	CHECK_INT(k->add_sa(k, &out.id, &out.data), SUCCESS);
	sa = fake_sa(&f, 0xc0000123);
	CHECK(sa);
	CHECK_STR(xj_str(sa, "dir"), "out");
	CHECK_STR(xj_str(xj_member(sa, "enc", json_type_object), "alg"), "cbc(aes)");
	CHECK_STR(xj_str(xj_member(sa, "auth", json_type_object), "alg"),
			  "hmac(sha256)");
	CHECK(!xj_member(sa, "encap", json_type_object));
	CHECK(xj_uint(sa, "tfc_pad", &v) && v == 1200);
	CHECK_STR(xj_str(sa, "df"), "clear");
	json_object_put(sa);
	/* the same (SPI, destination) again is refused by the daemon */
	CHECK_INT(k->add_sa(k, &out.id, &out.data), FAILED);
	CHECK(logged("HTTP 409, exists"));

	/* counters and the last use, read at the time of the query */
	now = time(NULL);
	{
		struct tm tm;

		gmtime_r(&now, &tm);
		tm.tm_sec -= 5;
		timegm(&tm);
		strftime(last, sizeof(last), "%Y-%m-%dT%H:%M:%S.250Z", &tm);
	}
	CHECK(fake_post(&f, "/_fake/sa/set", "{\"spi\":%u,\"dst\":\"198.19.0.1\","
					"\"bytes\":123456,\"packets\":789,\"last_use_time\":\"%s\"}",
					ntohl(spi), last));
	CHECK_INT(k->query_sa(k, &in.id, &query, &bytes, &packets, &use), SUCCESS);
	CHECK_INT(bytes, 123456);
	CHECK_INT(packets, 789);
	CHECK_MSG(use >= time_monotonic(NULL) - 7 && use <= time_monotonic(NULL) - 4,
			  "use time %ld, monotonic now %ld", (long)use,
			  (long)time_monotonic(NULL));

	/* NAT-T: the peer's port changed; the SA moves in place */
	new_src = host_create_from_string("198.19.0.2", 62000);
	upd = (kernel_ipsec_update_sa_t){
		.new_src = new_src,
		.new_dst = in.dst,
		.encap = TRUE,
		.new_encap = TRUE,
	};
	CHECK_INT(k->update_sa(k, &in.id, &upd), SUCCESS);
	sa = fake_sa(&f, ntohl(spi));
	CHECK(xj_uint(xj_member(sa, "encap", json_type_object), "sport", &v) &&
		  v == 62000);
	/* counters survive the move */
	CHECK(xj_uint(xj_member(sa, "current", json_type_object), "bytes", &v) &&
		  v == 123456);
	json_object_put(sa);
	new_src->destroy(new_src);

	CHECK_INT(k->del_sa(k, &in.id, &del), SUCCESS);
	CHECK_INT(k->del_sa(k, &out.id, &del), SUCCESS);
	CHECK_INT(fake_count(&f, "sas"), 0);
	CHECK_INT(k->del_sa(k, &in.id, &del), NOT_FOUND);
	CHECK_INT(k->query_sa(k, &in.id, &query, &bytes, &packets, &use), FAILED);
	k->destroy(k);
	fake_stop(&f);
	sa_args_free(&in);
	sa_args_free(&out);
}

/* what xdpsec cannot do is refused before anything reaches the daemon */
static void test_sa_refusals(void)
{
	kernel_ipsec_t *k;
	sa_args_t a;
	fake_t f;

	obs_reset();
	fake_init(&f, "ipsec-refuse");
	CHECK(fake_start(&f, NULL));
	k = backend(&f);
	sa_args(&a, 0xc0000200, false, false);

	a.id.mark = (mark_t){ .value = 1, .mask = 0xffffffff };
	CHECK_INT(k->add_sa(k, &a.id, &a.data), NOT_SUPPORTED);
	CHECK(logged("SPI c0000200: marks are not supported"));
	a.id.mark = (mark_t){};
	a.id.if_id = 9;
	CHECK_INT(k->add_sa(k, &a.id, &a.data), NOT_SUPPORTED);
	CHECK(logged("if_id"));
	a.id.if_id = 0;
	a.data.enc_alg = ENCR_AES_GCM_ICV8;
	CHECK_INT(k->add_sa(k, &a.id, &a.data), NOT_SUPPORTED);
	CHECK(logged("AES_GCM_8/UNDEFINED: 8-byte AES-GCM ICVs are not supported"));
	a.data.enc_alg = ENCR_AES_CBC;
	a.data.enc_key = chunk_create(a.enc, 16);
	a.data.int_alg = AUTH_HMAC_SHA1_96;
	a.data.int_key = chunk_create(a.integ, 20);
	CHECK_INT(k->add_sa(k, &a.id, &a.data), NOT_SUPPORTED);
	CHECK(logged("AES_CBC/HMAC_SHA1_96: integrity algorithm not supported"));
	a.data.int_alg = AUTH_HMAC_SHA2_256_128;
	a.data.int_key = chunk_create(a.integ, 32);
	a.data.copy_ecn = FALSE;
	CHECK_INT(k->add_sa(k, &a.id, &a.data), NOT_SUPPORTED);
	CHECK(logged("copy_ecn = no"));
	a.data.copy_ecn = TRUE;
	a.data.ipcomp = IPCOMP_DEFLATE;
	CHECK_INT(k->add_sa(k, &a.id, &a.data), NOT_SUPPORTED);
	CHECK(logged("IPComp is not supported"));
	a.data.ipcomp = IPCOMP_NONE;
	a.id.proto = IPPROTO_AH;
	CHECK_INT(k->add_sa(k, &a.id, &a.data), NOT_SUPPORTED);
	CHECK(logged("ESP only"));
	{
		uint16_t cpi;

		CHECK_INT(k->get_cpi(k, a.src, a.dst, &cpi), NOT_SUPPORTED);
		CHECK(logged("IPComp is not supported by xdpsec, no CPI"));
	}
	CHECK_INT(fake_requests(&f, "/v1/sa"), 0);
	k->destroy(k);
	fake_stop(&f);
	sa_args_free(&a);
}

typedef struct {
	kernel_ipsec_policy_id_t id;
	kernel_ipsec_manage_policy_t data;
	ipsec_sa_cfg_t sa;
	host_t *src, *dst;
} pol_args_t;

static void pol_args(pol_args_t *a, policy_dir_t dir, policy_priority_t prio,
					 uint32_t spi)
{
	memset(a, 0, sizeof(*a));
	a->src = host_create_from_string("198.19.0.1", 0);
	a->dst = host_create_from_string("198.19.0.2", 0);
	a->sa = (ipsec_sa_cfg_t){
		.mode = MODE_TUNNEL,
		.reqid = 3,
		.esp = { .use = TRUE, .spi = htonl(spi) },
	};
	a->id = (kernel_ipsec_policy_id_t){
		.dir = dir,
		.src_ts = traffic_selector_create_from_cidr("198.18.1.0/24", 0, 0,
													0xffff),
		.dst_ts = traffic_selector_create_from_cidr("198.18.2.0/24", 0, 0,
													0xffff),
	};
	a->data = (kernel_ipsec_manage_policy_t){
		.type = POLICY_IPSEC,
		.prio = prio,
		.src = a->src,
		.dst = a->dst,
		.sa = &a->sa,
	};
}

static void pol_args_free(pol_args_t *a)
{
	a->id.src_ts->destroy(a->id.src_ts);
	a->id.dst_ts->destroy(a->id.dst_ts);
	a->src->destroy(a->src);
	a->dst->destroy(a->dst);
}

/** The id of the fake's policy whose priority is prio, or 0. */
static uint64_t fake_policy_id(fake_t *f, uint64_t prio)
{
	json_object *st = fake_call(f, "GET", "/_fake/state", NULL, NULL);
	json_object *ps = xj_member(st, "policies", json_type_array);
	uint64_t id = 0, p;
	size_t i;

	for (i = 0; ps && i < json_object_array_length(ps); i++)
	{
		json_object *v = json_object_array_get_idx(ps, i);

		if (xj_uint(v, "priority", &p) && p == prio)
		{
			xj_uint(v, "id", &id);
		}
	}
	json_object_put(st);
	return id;
}

/* charon adds a policy once per CHILD_SA using it: the daemon holds it once
 * and loses it with the last user; a trap policy and an installed one with
 * the same selector are two entries, and the installed one answers queries */
static void test_policies(void)
{
	pol_args_t old, new, trap;
	kernel_ipsec_query_policy_t q = {};
	kernel_ipsec_t *k;
	uint64_t def_id, trap_id;
	time_t use = 0, now;
	char stamp[64];
	struct tm tm;
	fake_t f;

	obs_reset();
	fake_init(&f, "ipsec-sp");
	CHECK(fake_start(&f, NULL));
	k = backend(&f);
	pol_args(&old, POLICY_OUT, POLICY_PRIORITY_DEFAULT, 0xc0000001);
	/* the rekeyed CHILD_SA: same policy, new SPIs */
	pol_args(&new, POLICY_OUT, POLICY_PRIORITY_DEFAULT, 0xc0000002);
	pol_args(&trap, POLICY_OUT, POLICY_PRIORITY_ROUTED, 0);
	/* first contact (flush, info) is done before counting */
	CHECK(wait_until(logged_cond, "using xdpsec at", 5000));
	fake_requests(&f, "/");

	CHECK_INT(k->add_policy(k, &trap.id, &trap.data), SUCCESS);
	CHECK_INT(k->add_policy(k, &old.id, &old.data), SUCCESS);
	CHECK_INT(k->add_policy(k, &new.id, &new.data), SUCCESS);
	CHECK_INT(fake_count(&f, "policies"), 2);
	CHECK_INT(fake_requests(&f, "/v1/sp"), 2);

	def_id = fake_policy_id(&f, 400000 - 48 * 512 - 1);
	trap_id = fake_policy_id(&f, 400000 - 48 * 512);
	CHECK(def_id && trap_id);
	now = time(NULL);
	gmtime_r(&now, &tm);
	tm.tm_sec -= 3;
	timegm(&tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	CHECK(fake_post(&f, "/_fake/sp/set", "{\"id\":%llu,\"last_use_time\":"
					"\"%s\"}", (unsigned long long)def_id, stamp));
	CHECK_INT(k->query_policy(k, &new.id, &q, &use), SUCCESS);
	CHECK_MSG(use >= time_monotonic(NULL) - 5 && use <= time_monotonic(NULL) - 2,
			  "use %ld now %ld", (long)use, (long)time_monotonic(NULL));

	/* the old CHILD_SA goes: the policy stays for the new one */
	CHECK_INT(k->del_policy(k, &old.id, &old.data), SUCCESS);
	CHECK_INT(fake_count(&f, "policies"), 2);
	CHECK_INT(fake_requests(&f, "/v1/sp/delete"), 0);
	CHECK_INT(k->del_policy(k, &new.id, &new.data), SUCCESS);
	CHECK_INT(fake_count(&f, "policies"), 1);
	{
		/* by id, guarded by the id's epoch and our owner */
		json_object *info = fake_call(&f, "GET", "/v1/info", NULL, NULL);
		char target[160];

		snprintf(target, sizeof(target), "/v1/sp/delete?epoch=%s&owner=ike",
				 xj_str(info, "epoch") ?: "?");
		json_object_put(info);
		CHECK_INT(fake_requests(&f, target), 1);
	}
	/* now the trap policy answers the query, and it was never used */
	CHECK_INT(k->query_policy(k, &new.id, &q, &use), SUCCESS);
	CHECK_INT(use, 0);
	CHECK_INT(k->del_policy(k, &trap.id, &trap.data), SUCCESS);
	CHECK_INT(fake_count(&f, "policies"), 0);
	CHECK_INT(k->del_policy(k, &trap.id, &trap.data), NOT_FOUND);
	CHECK(logged("failed, not found"));
	CHECK_INT(k->query_policy(k, &new.id, &q, &use), NOT_FOUND);

	/* what the card cannot match on is refused with the reason */
	old.id.if_id = 5;
	CHECK_INT(k->add_policy(k, &old.id, &old.data), NOT_SUPPORTED);
	CHECK(logged("interface IDs (if_id, XFRM interfaces) are not supported"));
	k->destroy(k);
	fake_stop(&f);
	pol_args_free(&old);
	pol_args_free(&new);
	pol_args_free(&trap);
}

static int udp_socket(uint16_t *port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr*)&addr, sizeof(addr)) < 0 ||
		getsockname(fd, (struct sockaddr*)&addr, &len) < 0)
	{
		return -1;
	}
	*port = ntohs(addr.sin_port);
	return fd;
}

/** Whether the fake holds a bypass policy for dir with a port range of port. */
static bool fake_has_bypass(fake_t *f, const char *dir, uint16_t port)
{
	json_object *st = fake_call(f, "GET", "/_fake/state", NULL, NULL);
	json_object *ps = xj_member(st, "policies", json_type_array);
	bool found = false;
	size_t i;

	for (i = 0; ps && i < json_object_array_length(ps); i++)
	{
		json_object *v = json_object_array_get_idx(ps, i);
		json_object *sel = xj_member(v, "sel", json_type_object);
		json_object *r = xj_member(sel, streq(dir, "in") ? "dport" : "sport",
								   json_type_object);
		uint64_t lo = 0, hi = 0, proto = 0, prio = 0;

		xj_uint(r, "lo", &lo);
		xj_uint(r, "hi", &hi);
		xj_uint(sel, "proto", &proto);
		xj_uint(v, "priority", &prio);
		if (streq(xj_str(v, "dir") ?: "", dir) && lo == port && hi == port &&
			proto == IPPROTO_UDP && prio == 1 &&
			streq(xj_str(v, "action") ?: "", "bypass"))
		{
			found = true;
		}
	}
	json_object_put(st);
	return found;
}

typedef struct {
	fake_t *f;
	uint16_t port;
} bypass_want_t;

static bool bypasses_there(void *ctx)
{
	bypass_want_t *w = ctx;

	return fake_has_bypass(w->f, "in", w->port) &&
		   fake_has_bypass(w->f, "out", w->port);
}

/* charon's IKE sockets get bypass policies both ways, also when the daemon
 * comes up only after charon; the card's NAT-T port is checked */
static void test_ike_sockets(void)
{
	bypass_want_t w;
	kernel_ipsec_t *k;
	uint16_t port;
	fake_t f;
	int fd;

	obs_reset();
	fake_init(&f, "ipsec-bypass");
	k = backend(&f);
	fd = udp_socket(&port);
	CHECK(fd >= 0);
	/* no daemon yet: refused now, installed on first contact */
	CHECK(!k->bypass_socket(k, fd, AF_INET));
	CHECK(logged("installing them when xdpsec answers"));
	CHECK(fake_start(&f, "--encap-port 4500"));
	w = (bypass_want_t){ .f = &f, .port = port };
	CHECK(wait_until(bypasses_there, &w, 10000));
	CHECK_INT(fake_count(&f, "policies"), 2);

	CHECK(k->enable_udp_decap(k, fd, AF_INET, 4500));
	CHECK(!k->enable_udp_decap(k, fd, AF_INET, 4501));
	CHECK(logged("set charon.port_nat_t = 4500"));

	/* charon stopping removes them */
	k->destroy(k);
	CHECK_INT(fake_count(&f, "policies"), 0);
	close(fd);
	fake_stop(&f);
}

/* an earlier charon's SAs and policies are removed on first contact, other
 * owners' are not */
static void test_flush_on_start(void)
{
	kernel_ipsec_t *k;
	host_t *src, *dst;
	uint32_t spi;
	fake_t f;

	obs_reset();
	fake_init(&f, "ipsec-flush");
	CHECK(fake_start(&f, NULL));
	CHECK(fake_post(&f, "/v1/sa", "{\"owner\":\"ike\",\"spi\":4097,\"src\":"
					"\"198.19.0.1\",\"dst\":\"198.19.0.2\",\"proto\":50,"
					"\"aead\":{\"alg\":\"rfc4106(gcm(aes))\",\"key\":"
					"\"0x000102030405060708090a0b0c0d0e0f10111213\",\"bits\":128}}"));
	CHECK(fake_post(&f, "/v1/sa", "{\"owner\":\"config\",\"spi\":4098,\"src\":"
					"\"198.19.0.1\",\"dst\":\"198.19.0.2\",\"proto\":50,"
					"\"aead\":{\"alg\":\"rfc4106(gcm(aes))\",\"key\":"
					"\"0x000102030405060708090a0b0c0d0e0f10111213\",\"bits\":128}}"));
	CHECK(fake_post(&f, "/v1/sp", "{\"owner\":\"ike\",\"dir\":\"in\",\"sel\":"
					"{\"src\":\"0.0.0.0/0\",\"dst\":\"0.0.0.0/0\"}}"));
	CHECK(fake_post(&f, "/v1/sp", "{\"owner\":\"config\",\"dir\":\"in\",\"sel\":"
					"{\"src\":\"0.0.0.0/0\",\"dst\":\"0.0.0.0/0\"}}"));
	k = backend(&f);
	src = host_create_from_string("198.19.0.2", 0);
	dst = host_create_from_string("198.19.0.1", 0);
	CHECK_INT(k->get_spi(k, src, dst, IPPROTO_ESP, &spi), SUCCESS);
	CHECK_INT(fake_count(&f, "sas"), 1);
	CHECK_INT(fake_count(&f, "policies"), 1);
	CHECK(logged("removed 1 SAs and 1 policies an earlier charon left"));
	k->destroy(k);
	fake_stop(&f);
	src->destroy(src);
	dst->destroy(dst);
}

static bool has_acquire(void *ctx)
{
	bool ok;

	(void)ctx;
	obs.lock->lock(obs.lock);
	ok = obs.nacquires > 0;
	obs.lock->unlock(obs.lock);
	return ok;
}

/* the daemon's events reach charon: soft expiry once, hard expiry, deletion
 * by someone else, acquire; events of SAs charon did not add do not */
static void test_events_to_charon(void)
{
	kernel_ipsec_del_sa_t del = {};
	kernel_ipsec_t *k;
	sa_args_t in;
	int n;
	fake_t f;

	obs_reset();
	fake_init(&f, "ipsec-events");
	CHECK(fake_start(&f, NULL));
	k = backend(&f);
	sa_args(&in, 0xc0000301, true, false);
	CHECK_INT(k->add_sa(k, &in.id, &in.data), SUCCESS);

	CHECK(fake_post(&f, "/_fake/event", "{\"type\":\"sa-soft-expired\","
					"\"owner\":\"ike\",\"spi\":%u,\"dst\":\"198.19.0.1\","
					"\"reason\":\"bytes\"}", 0xc0000999));
	CHECK(fake_post(&f, "/_fake/event", "{\"type\":\"sa-soft-expired\","
					"\"owner\":\"ike\",\"spi\":%u,\"dst\":\"198.19.0.1\","
					"\"reason\":\"bytes\"}", 0xc0000301));
	CHECK(fake_post(&f, "/_fake/event", "{\"type\":\"sa-soft-expired\","
					"\"owner\":\"ike\",\"spi\":%u,\"dst\":\"198.19.0.1\","
					"\"reason\":\"add-time\"}", 0xc0000301));
	CHECK(fake_post(&f, "/_fake/event", "{\"type\":\"sa-hard-expired\","
					"\"owner\":\"ike\",\"spi\":%u,\"dst\":\"198.19.0.1\","
					"\"reason\":\"add-time\"}", 0xc0000301));
	n = 2;
	CHECK(wait_until(expires_reach, &n, 10000));
	/* a deletion event after the hard expiry is not a second one */
	CHECK(fake_post(&f, "/_fake/event", "{\"type\":\"sa-deleted\","
					"\"owner\":\"ike\",\"spi\":%u,\"dst\":\"198.19.0.1\"}",
					0xc0000301));
	CHECK(fake_post(&f, "/_fake/event", "{\"type\":\"acquire\",\"owner\":"
					"\"ike\",\"reqid\":7,\"policy_id\":4,\"src\":\"198.18.1.5\","
					"\"dst\":\"198.18.2.5\",\"proto\":6,\"dport\":80}"));
	CHECK(wait_until(has_acquire, NULL, 10000));
	CHECK_INT(count_expires(), 2);
	CHECK_INT(obs.expires[0].spi, 0xc0000301);
	CHECK_STR(obs.expires[0].dst, "198.19.0.1");
	CHECK(!obs.expires[0].hard);
	CHECK_INT(obs.expires[1].spi, 0xc0000301);
	CHECK(obs.expires[1].hard);
	CHECK_INT(obs.nacquires, 1);
	CHECK_INT(obs.acquires[0].reqid, 7);
	CHECK_STR(obs.acquires[0].src, "198.18.1.5/32");
	CHECK_STR(obs.acquires[0].dst, "198.18.2.5/32");
	CHECK_INT(obs.acquires[0].proto, IPPROTO_TCP);
	CHECK_INT(obs.acquires[0].sport_lo, 0);
	CHECK_INT(obs.acquires[0].sport_hi, 0xffff);
	CHECK_INT(obs.acquires[0].dport_lo, 80);
	CHECK_INT(obs.acquires[0].dport_hi, 80);

	/* someone deletes an SA of charon's with the CLI: charon hears of it */
	in.id.spi = htonl(0xc0000302);
	CHECK_INT(k->add_sa(k, &in.id, &in.data), SUCCESS);
	CHECK(fake_post(&f, "/v1/sa/delete", "{\"id\":{\"spi\":%u,\"dst\":"
					"\"198.19.0.1\",\"proto\":50}}", 0xc0000302));
	n = 3;
	CHECK(wait_until(expires_reach, &n, 10000));
	CHECK_INT(obs.expires[2].spi, 0xc0000302);
	CHECK(obs.expires[2].hard);
	/* charon's own deletion is not reported back to it */
	in.id.spi = htonl(0xc0000303);
	CHECK_INT(k->add_sa(k, &in.id, &in.data), SUCCESS);
	CHECK_INT(k->del_sa(k, &in.id, &del), SUCCESS);
	in.id.spi = htonl(0xc0000304);
	CHECK_INT(k->add_sa(k, &in.id, &in.data), SUCCESS);
	CHECK(fake_post(&f, "/_fake/event", "{\"type\":\"sa-hard-expired\","
					"\"owner\":\"ike\",\"spi\":%u,\"dst\":\"198.19.0.1\"}",
					0xc0000304));
	n = 4;
	CHECK(wait_until(expires_reach, &n, 10000));
	CHECK_INT(obs.expires[3].spi, 0xc0000304);
	CHECK_INT(count_expires(), 4);
	k->destroy(k);
	fake_stop(&f);
	sa_args_free(&in);
}

/* events lost to a full backlog: the SAs are read again; a dying SA gets its
 * soft expiry, a vanished one its hard expiry, a healthy one nothing */
static void test_resync(void)
{
	kernel_ipsec_t *k;
	sa_args_t a;
	int i, n;
	fake_t f;

	obs_reset();
	fake_init(&f, "ipsec-resync");
	CHECK(fake_start(&f, "--backlog 8"));
	k = backend(&f);
	sa_args(&a, 0xc0000401, true, false);
	CHECK_INT(k->add_sa(k, &a.id, &a.data), SUCCESS);
	a.id.spi = htonl(0xc0000402);
	CHECK_INT(k->add_sa(k, &a.id, &a.data), SUCCESS);
	a.id.spi = htonl(0xc0000403);
	CHECK_INT(k->add_sa(k, &a.id, &a.data), SUCCESS);
	CHECK(wait_until(logged_cond, "using xdpsec at", 5000));
	usleep(500000);

	CHECK(fake_post(&f, "/_fake/streams", "{\"paused\":true}"));
	CHECK(fake_post(&f, "/_fake/sa/set", "{\"spi\":%u,\"dst\":\"198.19.0.1\","
					"\"state\":\"dying\"}", 0xc0000401));
	CHECK(fake_post(&f, "/_fake/sa/forget", "{\"spi\":%u,\"dst\":"
					"\"198.19.0.1\"}", 0xc0000403));
	for (i = 0; i < 20; i++)
	{
		CHECK(fake_post(&f, "/_fake/event", "{\"type\":\"offload-acked\","
						"\"owner\":\"ike\"}"));
	}
	CHECK(fake_post(&f, "/_fake/streams", "{\"paused\":false}"));
	n = 2;
	CHECK(wait_until(expires_reach, &n, 10000));
	usleep(300000);
	CHECK(logged("events were lost (backlog)"));
	CHECK_INT(count_expires(), 2);
	for (i = 0; i < 2; i++)
	{
		if (obs.expires[i].spi == 0xc0000401)
		{
			CHECK(!obs.expires[i].hard);
		}
		else
		{
			CHECK_INT(obs.expires[i].spi, 0xc0000403);
			CHECK(obs.expires[i].hard);
		}
	}
	k->destroy(k);
	fake_stop(&f);
	sa_args_free(&a);
}

typedef struct {
	fake_t *f;
	int n;
} count_want_t;

static bool policies_reach(void *ctx)
{
	count_want_t *w = ctx;

	return fake_count(w->f, "policies") >= w->n;
}

/* the daemon is killed and started again, empty: charon's policies are
 * installed again and every CHILD_SA is rekeyed (one soft expiry each) */
static void test_daemon_restart(void)
{
	count_want_t cw;
	kernel_ipsec_t *k;
	sa_args_t in, out;
	pol_args_t pol;
	uint16_t port;
	int fd, n;
	fake_t f;

	obs_reset();
	fake_init(&f, "ipsec-restart");
	CHECK(fake_start(&f, "--epoch e1"));
	k = backend(&f);
	fd = udp_socket(&port);
	CHECK(k->bypass_socket(k, fd, AF_INET));
	sa_args(&in, 0xc0000501, true, false);
	sa_args(&out, 0xc0000502, false, false);
	CHECK_INT(k->add_sa(k, &in.id, &in.data), SUCCESS);
	CHECK_INT(k->add_sa(k, &out.id, &out.data), SUCCESS);
	pol_args(&pol, POLICY_IN, POLICY_PRIORITY_DEFAULT, 0xc0000501);
	CHECK_INT(k->add_policy(k, &pol.id, &pol.data), SUCCESS);
	CHECK_INT(fake_count(&f, "policies"), 3);

	fake_kill(&f);
	CHECK(fake_start(&f, "--epoch e2"));
	cw = (count_want_t){ .f = &f, .n = 3 };
	CHECK(wait_until(policies_reach, &cw, 10000));
	n = 1;
	CHECK(wait_until(expires_reach, &n, 10000));
	usleep(300000);
	CHECK(logged("xdpsec restarted (epoch e2, was e1)"));
	CHECK_INT(count_expires(), 1);
	CHECK_INT(obs.expires[0].spi, 0xc0000501);
	CHECK(!obs.expires[0].hard);
	CHECK_INT(fake_count(&f, "policies"), 3);

	/* the policy's id is now the new daemon's: deleting it works */
	CHECK_INT(k->del_policy(k, &pol.id, &pol.data), SUCCESS);
	CHECK_INT(fake_count(&f, "policies"), 2);
	k->destroy(k);
	close(fd);
	fake_stop(&f);
	sa_args_free(&in);
	sa_args_free(&out);
	pol_args_free(&pol);
}

static bool no_sas(void *ctx)
{
	return fake_count(ctx, "sas") == 0;
}

/* a deletion that broke off (the daemon dropped the connection) is done
 * when the daemon answers again */
static void test_deferred_delete(void)
{
	kernel_ipsec_del_sa_t del = {};
	kernel_ipsec_t *k;
	sa_args_t a;
	fake_t f;

	obs_reset();
	fake_init(&f, "ipsec-deferred");
	CHECK(fake_start(&f, NULL));
	k = backend(&f);
	sa_args(&a, 0xc0000601, false, false);
	CHECK_INT(k->add_sa(k, &a.id, &a.data), SUCCESS);
	CHECK(wait_until(logged_cond, "using xdpsec at", 5000));
	CHECK(fake_post(&f, "/_fake/fault", "{\"path\":\"/v1/sa/delete\",\"mode\":"
					"\"close\"}"));
	CHECK_INT(k->del_sa(k, &a.id, &del), FAILED);
	CHECK(logged("trying again when the daemon answers"));
	CHECK_INT(fake_count(&f, "sas"), 1);
	/* the event stream reconnecting is the daemon answering again */
	CHECK(fake_post(&f, "/_fake/streams/close", "{}"));
	CHECK(wait_until(no_sas, &f, 10000));
	k->destroy(k);
	fake_stop(&f);
	sa_args_free(&a);
}

/* a slow daemon: the call gives up at the deadline with the reason, the
 * next one succeeds; a daemon dying mid-call: the same */
static void test_slow_and_dying(void)
{
	kernel_ipsec_query_sa_t q = {};
	kernel_ipsec_t *k;
	uint64_t bytes, packets;
	time_t use;
	int64_t t0, took;
	sa_args_t a;
	fake_t f;

	obs_reset();
	fake_init(&f, "ipsec-slow");
	CHECK(fake_start(&f, NULL));
	k = backend(&f);
	sa_args(&a, 0xc0000701, false, false);
	CHECK_INT(k->add_sa(k, &a.id, &a.data), SUCCESS);
	CHECK(fake_post(&f, "/_fake/fault", "{\"path\":\"/v1/sa/get\",\"mode\":"
					"\"delay\",\"ms\":4000}"));
	t0 = test_now_ms();
	CHECK_INT(k->query_sa(k, &a.id, &q, &bytes, &packets, &use), FAILED);
	took = test_now_ms() - t0;
	/* timeout is 2000 ms in the tests' strongswan.conf */
	CHECK_MSG(took >= 1900 && took < 3500, "took %lld ms", (long long)took);
	CHECK(logged("timed out reading the response header (after 2000 ms)"));
	CHECK_INT(k->query_sa(k, &a.id, &q, &bytes, &packets, &use), SUCCESS);

	CHECK(fake_post(&f, "/_fake/fault", "{\"path\":\"/v1/sa\",\"mode\":"
					"\"close\"}"));
	a.id.spi = htonl(0xc0000702);
	CHECK_INT(k->add_sa(k, &a.id, &a.data), FAILED);
	CHECK(logged("connection closed while reading the response header"));
	CHECK_INT(k->add_sa(k, &a.id, &a.data), SUCCESS);
	k->destroy(k);
	fake_stop(&f);
	sa_args_free(&a);
}

/* a daemon without the migrate endpoint: charon is told NOT_SUPPORTED and
 * rekeys instead */
static void test_update_unsupported(void)
{
	kernel_ipsec_update_sa_t upd = {};
	kernel_ipsec_t *k;
	sa_args_t a;
	fake_t f;

	obs_reset();
	fake_init(&f, "ipsec-nomigrate");
	CHECK(fake_start(&f, NULL));
	k = backend(&f);
	sa_args(&a, 0xc0000801, false, true);
	CHECK_INT(k->add_sa(k, &a.id, &a.data), SUCCESS);
	CHECK(fake_post(&f, "/_fake/fault", "{\"path\":\"/v1/sa/migrate\",\"mode\":"
					"\"status\",\"status\":404,\"content_type\":\"text/plain\","
					"\"body\":\"404 page not found\\n\"}"));
	upd = (kernel_ipsec_update_sa_t){
		.new_src = a.src,
		.new_dst = a.dst,
		.encap = TRUE,
		.new_encap = FALSE,
	};
	CHECK_INT(k->update_sa(k, &a.id, &upd), NOT_SUPPORTED);
	CHECK(logged("charon rekeys instead"));
	/* a real answer of the endpoint: the SA loses its encapsulation */
	CHECK_INT(k->update_sa(k, &a.id, &upd), SUCCESS);
	{
		json_object *sa = fake_sa(&f, 0xc0000801);

		CHECK(sa && !xj_member(sa, "encap", json_type_object));
		json_object_put(sa);
	}
	k->destroy(k);
	fake_stop(&f);
	sa_args_free(&a);
}

/* a policy the restarted daemon refused when the plugin installed it again
 * is installed by charon's next use of it */
static void test_policy_reinstalled_on_use(void)
{
	kernel_ipsec_t *k;
	pol_args_t pol;
	fake_t f;

	obs_reset();
	fake_init(&f, "ipsec-reinstall");
	CHECK(fake_start(&f, "--epoch r1"));
	k = backend(&f);
	pol_args(&pol, POLICY_OUT, POLICY_PRIORITY_DEFAULT, 0xc0000901);
	CHECK_INT(k->add_policy(k, &pol.id, &pol.data), SUCCESS);
	fake_kill(&f);
	CHECK(fake_start(&f, "--epoch r2 --fault "
					 "'{\"path\":\"/v1/sp\",\"mode\":\"status\",\"status\":507,"
					 "\"body\":\"{\\\"error\\\":\\\"add policy: full\\\",\\\"kind\\\":"
					 "\\\"full\\\"}\"}'"));
	CHECK(wait_until(logged_cond, "installed 0 policies in xdpsec, 1 failed",
					 10000));
	CHECK(logged("HTTP 507, full: add policy: full"));
	CHECK_INT(fake_count(&f, "policies"), 0);
	/* the next CHILD_SA using it */
	CHECK_INT(k->add_policy(k, &pol.id, &pol.data), SUCCESS);
	CHECK_INT(fake_count(&f, "policies"), 1);
	CHECK_INT(k->del_policy(k, &pol.id, &pol.data), SUCCESS);
	CHECK_INT(fake_count(&f, "policies"), 1);
	CHECK_INT(k->del_policy(k, &pol.id, &pol.data), SUCCESS);
	CHECK_INT(fake_count(&f, "policies"), 0);
	k->destroy(k);
	fake_stop(&f);
	pol_args_free(&pol);
}

const test_t ipsec_tests[] = {
	{ "ipsec/daemon-absent-then-up", test_daemon_absent },
	{ "ipsec/old-daemon", test_old_daemon },
	{ "ipsec/sa-lifecycle", test_sa_lifecycle },
	{ "ipsec/sa-refusals", test_sa_refusals },
	{ "ipsec/policies", test_policies },
	{ "ipsec/ike-sockets", test_ike_sockets },
	{ "ipsec/flush-on-start", test_flush_on_start },
	{ "ipsec/events-to-charon", test_events_to_charon },
	{ "ipsec/resync", test_resync },
	{ "ipsec/daemon-restart", test_daemon_restart },
	{ "ipsec/deferred-delete", test_deferred_delete },
	{ "ipsec/slow-and-dying-daemon", test_slow_and_dying },
	{ "ipsec/update-unsupported", test_update_unsupported },
	{ "ipsec/policy-reinstalled-on-use", test_policy_reinstalled_on_use },
	{ NULL, NULL },
};
