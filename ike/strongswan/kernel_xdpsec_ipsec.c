/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The xdpsec daemon is the SAD and SPD; this backend translates charon's
 * calls into its API and keeps only what charon's interface needs beyond it:
 *
 * - the SAs it added (no keys), to tell charon about expiries, deletions and
 *   a daemon restart that lost them;
 * - a reference count per distinct policy: charon adds the same policy once
 *   per CHILD_SA using it (rekeying, overlapping CHILD_SAs), the daemon holds
 *   it once (docs/ike-api.md, "Policies owned by ike");
 * - the bypass policies of charon's IKE sockets, installed again when the
 *   daemon restarts.
 */

#include "kernel_xdpsec_ipsec.h"
#include "xdpsec_alg.h"
#include "xdpsec_client.h"
#include "xdpsec_events.h"
#include "xdpsec_json.h"
#include "xdpsec_spd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <daemon.h>
#include <collections/hashtable.h>
#include <collections/linked_list.h>
#include <threading/mutex.h>
#include <threading/thread.h>

/** Default of charon.plugins.kernel-xdpsec.instance. */
#define DEFAULT_INSTANCE "xdpsec"
/** The daemon sends a keepalive line at least this often (docs/ike-api.md). */
#define KEEPALIVE_MS 15000
/** The API version this backend speaks. */
#define API_VERSION 2

typedef struct private_kernel_xdpsec_ipsec_t private_kernel_xdpsec_ipsec_t;

/** An SA this backend added. */
typedef struct {
	/** "<spi> <dst>": its key in the table */
	char key[64];
	/** SPI in host order */
	uint32_t spi;
	host_t *dst;
	bool inbound;
	/** order of addition, to tell SAs added during a re-read */
	uint64_t gen;
	/** the daemon's epoch when it was added */
	char epoch[XDPSEC_EPOCH_LEN + 1];
	/** a soft expiry was raised for it already */
	bool soft_raised;
	/** the daemon lost it (restart) and charon was asked to rekey */
	bool lost;
} tracked_sa_t;

/** A distinct policy in the daemon and how many of charon's uses it has. */
typedef struct {
	/** the policy's JSON: request and identity */
	char *key;
	/** its (direction, selector), to answer query_policy */
	char *selkey;
	uint32_t priority;
	/** the daemon's id for it, 0 while not installed */
	uint32_t id;
	/** the epoch that id belongs to */
	char epoch[XDPSEC_EPOCH_LEN + 1];
	u_int refs;
	/** order of installation: the newest wins a tie, as in the daemon */
	uint64_t order;
} policy_entry_t;

/** The bypass policies of one IKE socket. */
typedef struct {
	int family;
	uint16_t port;
} bypass_t;

/** A deletion that could not reach the daemon, tried again on contact. */
typedef struct {
	char *target;
	char *body;
	char epoch[XDPSEC_EPOCH_LEN + 1];
} deferred_t;

struct private_kernel_xdpsec_ipsec_t {

	kernel_xdpsec_ipsec_t public;

	char *socket;
	xc_client_t *client;
	u_int larval_lifetime;
	uint32_t spi_min;
	uint32_t spi_max;
	bool flush_on_start;

	/** protects sas, gen, epoch, ready, encap_port, deferred */
	mutex_t *mutex;
	hashtable_t *sas;
	uint64_t gen;
	char epoch[XDPSEC_EPOCH_LEN + 1];
	bool ready;
	uint16_t encap_port;
	uint64_t info_seq;
	linked_list_t *deferred;

	/** serializes the first contact */
	mutex_t *ready_lock;

	/** held across policy requests, so that the table equals the daemon */
	mutex_t *policy_lock;
	hashtable_t *policies;
	uint64_t order;
	linked_list_t *bypasses;

	xdpsec_events_t *events;
	thread_t *events_thread;
};

/** The answer of one API call. */
typedef struct {
	int status;
	/** the error body's kind, "" for none */
	char kind[32];
	/** the parsed body of a 2xx answer, if it had one */
	json_object *json;
} answer_t;

static void answer_free(answer_t *a)
{
	json_object_put(a->json);
	a->json = NULL;
}

static bool ok(answer_t *a)
{
	return a->status >= 200 && a->status < 300;
}

static void set_epoch(private_kernel_xdpsec_ipsec_t *this, const char *epoch)
{
	if (epoch && *epoch)
	{
		this->mutex->lock(this->mutex);
		snprintf(this->epoch, sizeof(this->epoch), "%s", epoch);
		this->mutex->unlock(this->mutex);
	}
}

static void get_epoch(private_kernel_xdpsec_ipsec_t *this, char *buf)
{
	this->mutex->lock(this->mutex);
	memcpy(buf, this->epoch, sizeof(this->epoch));
	this->mutex->unlock(this->mutex);
}

/**
 * One request. True if the daemon answered (any status; err holds the
 * reason of a non-2xx one), false if it could not be reached or the answer
 * broke off (err says why).
 */
static bool api(private_kernel_xdpsec_ipsec_t *this, const char *method,
				const char *target, const char *body, size_t len,
				answer_t *ans, char *err, size_t errlen)
{
	xc_response_t resp;
	xc_status_t st;

	memset(ans, 0, sizeof(*ans));
	st = xc_request(this->client, method, target, body, len, &resp, err,
					errlen);
	if (st != XC_OK)
	{
		return FALSE;
	}
	set_epoch(this, resp.epoch);
	ans->status = resp.status;
	if (ok(ans))
	{
		if (resp.len)
		{
			ans->json = xj_parse(resp.body, resp.len, err, errlen);
			if (!ans->json)
			{
				xc_response_free(&resp);
				return FALSE;
			}
		}
	}
	else
	{
		xj_error_text(resp.status, resp.body, err, errlen);
		xj_error_kind(resp.body, ans->kind, sizeof(ans->kind));
	}
	xc_response_free(&resp);
	return TRUE;
}

/** A JSON document written by w as a request. */
static bool api_json(private_kernel_xdpsec_ipsec_t *this, const char *method,
					 const char *target, jw_t *w, answer_t *ans, char *err,
					 size_t errlen)
{
	const char *body;
	size_t len;

	body = jw_result(w, &len);
	if (!body)
	{
		snprintf(err, errlen, "building the request failed");
		memset(ans, 0, sizeof(*ans));
		return FALSE;
	}
	return api(this, method, target, body, len, ans, err, errlen);
}

/** Whether an error answer means the daemon lacks the endpoint. */
static bool unknown_endpoint(answer_t *a)
{
	return (a->status == 404 && !a->kind[0]) || a->status == 405 ||
		   a->status == 501;
}

/**
 * Add or reinstall a policy entry in the daemon. Call with policy_lock.
 */
static bool policy_install(private_kernel_xdpsec_ipsec_t *this,
						   policy_entry_t *entry, char *err, size_t errlen)
{
	answer_t ans;
	uint64_t id;

	if (!api(this, "POST", "/v1/sp", entry->key, strlen(entry->key), &ans,
			 err, errlen))
	{
		return FALSE;
	}
	if (!ok(&ans))
	{
		answer_free(&ans);
		return FALSE;
	}
	if (!xj_uint(ans.json, "id", &id) || !id || id > UINT32_MAX)
	{
		snprintf(err, errlen, "answer without a policy id");
		answer_free(&ans);
		return FALSE;
	}
	answer_free(&ans);
	entry->id = id;
	get_epoch(this, entry->epoch);
	entry->order = ++this->order;
	return TRUE;
}

static void policy_entry_destroy(policy_entry_t *entry)
{
	free(entry->key);
	free(entry->selkey);
	free(entry);
}

CALLBACK(policy_entry_destroy_cb, void,
	policy_entry_t *entry, const void *key)
{
	(void)key;
	policy_entry_destroy(entry);
}

/** Remember a deletion to try again when the daemon answers. */
static void defer(private_kernel_xdpsec_ipsec_t *this, const char *target,
				  const char *body, const char *epoch)
{
	deferred_t *d;

	if (!*epoch)
	{	/* never reached the daemon: nothing of ours is there */
		return;
	}
	INIT(d,
		.target = strdup(target),
		.body = strdup(body),
	);
	memcpy(d->epoch, epoch, sizeof(d->epoch));
	this->mutex->lock(this->mutex);
	this->deferred->insert_last(this->deferred, d);
	this->mutex->unlock(this->mutex);
}

static void deferred_destroy(deferred_t *d)
{
	free(d->target);
	free(d->body);
	free(d);
}

/** The target of a request naming a policy by id: with the epoch the id
 * belongs to and our owner, so that a restarted daemon, or an id now used by
 * someone else's policy, makes the daemon refuse instead of acting on
 * another policy. */
static void epoch_target(char *buf, size_t len, const char *path,
						 const char *epoch)
{
	snprintf(buf, len, "%s?epoch=%s&owner=ike", path, epoch);
}

/**
 * Drop one use of a policy; the last one deletes it from the daemon.
 * Call with policy_lock.
 */
static status_t policy_unref(private_kernel_xdpsec_ipsec_t *this,
							 const char *key, char *err, size_t errlen)
{
	policy_entry_t *entry;
	char target[160], body[64];
	answer_t ans;
	status_t status = SUCCESS;

	entry = this->policies->get(this->policies, key);
	if (!entry)
	{
		snprintf(err, errlen, "not found");
		return NOT_FOUND;
	}
	if (--entry->refs > 0)
	{
		return SUCCESS;
	}
	this->policies->remove(this->policies, key);
	if (entry->id)
	{
		epoch_target(target, sizeof(target), "/v1/sp/delete", entry->epoch);
		snprintf(body, sizeof(body), "{\"id\":%u}", entry->id);
		if (!api(this, "POST", target, body, strlen(body), &ans, err, errlen))
		{
			defer(this, target, body, entry->epoch);
			status = FAILED;
		}
		else if (!ok(&ans) && ans.status != 404 && ans.status != 412)
		{	/* 404: gone already; 412: a restarted daemon, which lost it */
			status = FAILED;
		}
		answer_free(&ans);
	}
	policy_entry_destroy(entry);
	return status;
}

/**
 * Add one use of a policy; the first one adds it to the daemon. With
 * pending, a policy the daemon cannot take now is kept and installed on
 * contact. Call with policy_lock.
 */
static status_t policy_ref(private_kernel_xdpsec_ipsec_t *this,
						   const char *key, char *selkey, bool pending,
						   char *err, size_t errlen)
{
	policy_entry_t *entry;
	json_object *obj;
	uint64_t prio = 0;

	entry = this->policies->get(this->policies, key);
	if (entry)
	{
		free(selkey);
		/* one the daemon refused or never got: it must be there for this
		 * use too */
		if (!entry->id && !policy_install(this, entry, err, errlen) && !pending)
		{
			return FAILED;
		}
		entry->refs++;
		return entry->id ? SUCCESS : FAILED;
	}
	obj = xj_parse(key, strlen(key), err, errlen);
	xj_uint(obj, "priority", &prio);
	json_object_put(obj);
	INIT(entry,
		.key = strdup(key),
		.selkey = selkey,
		.priority = prio,
		.refs = 1,
	);
	if (!policy_install(this, entry, err, errlen))
	{
		if (!pending)
		{
			policy_entry_destroy(entry);
			return FAILED;
		}
		entry->id = 0;
		this->policies->put(this->policies, entry->key, entry);
		return FAILED;
	}
	this->policies->put(this->policies, entry->key, entry);
	return SUCCESS;
}

/**
 * Install what the daemon does not hold in its current epoch: policies
 * charon added while it was away or before it restarted. Call with
 * policy_lock.
 */
static void sync_policies(private_kernel_xdpsec_ipsec_t *this)
{
	char epoch[XDPSEC_EPOCH_LEN + 1], err[XDPSEC_ERRLEN];
	enumerator_t *enumerator;
	policy_entry_t *entry;
	int done = 0, failed = 0;

	get_epoch(this, epoch);
	enumerator = this->policies->create_enumerator(this->policies);
	while (enumerator->enumerate(enumerator, NULL, &entry))
	{
		if (entry->id && streq(entry->epoch, epoch))
		{
			continue;
		}
		entry->id = 0;
		if (policy_install(this, entry, err, sizeof(err)))
		{
			done++;
		}
		else
		{
			failed++;
			DBG1(DBG_KNL, "kernel-xdpsec: installing policy %s failed: %s",
				 entry->key, err);
		}
	}
	enumerator->destroy(enumerator);
	if (done || failed)
	{
		DBG1(DBG_KNL, "kernel-xdpsec: installed %d policies in xdpsec, %d "
			 "failed", done, failed);
	}
}

/**
 * First contact with a daemon: check that it serves the API this backend
 * needs, remove what a previous charon left behind, install the pending
 * bypass policies.
 */
static bool ensure_ready(private_kernel_xdpsec_ipsec_t *this, char *err,
						 size_t errlen)
{
	answer_t ans;
	uint64_t version = 0, port = 0, seq = 0;
	const char *epoch;
	bool ready;

	this->mutex->lock(this->mutex);
	ready = this->ready;
	this->mutex->unlock(this->mutex);
	if (ready)
	{
		return TRUE;
	}
	this->ready_lock->lock(this->ready_lock);
	this->mutex->lock(this->mutex);
	ready = this->ready;
	this->mutex->unlock(this->mutex);
	if (ready)
	{
		this->ready_lock->unlock(this->ready_lock);
		return TRUE;
	}
	if (!api(this, "GET", "/v1/info", NULL, 0, &ans, err, errlen))
	{
		this->ready_lock->unlock(this->ready_lock);
		return FALSE;
	}
	if (!ok(&ans))
	{
		char text[XDPSEC_ERRLEN];

		snprintf(text, sizeof(text), "%s", err);
		snprintf(err, errlen, "the daemon at %s does not serve xdpsec's IKE "
				 "API (GET /v1/info: %s); it needs an xdpsec with the API of "
				 "docs/ike-api.md", this->socket, text);
		this->ready_lock->unlock(this->ready_lock);
		return FALSE;
	}
	epoch = xj_str(ans.json, "epoch");
	if (!xj_uint(ans.json, "api", &version) || version < API_VERSION ||
		!epoch || !*epoch || strlen(epoch) > XDPSEC_EPOCH_LEN)
	{
		snprintf(err, errlen, "the daemon at %s speaks API version %llu, "
				 "kernel-xdpsec needs %d or later", this->socket,
				 (unsigned long long)version, API_VERSION);
		answer_free(&ans);
		this->ready_lock->unlock(this->ready_lock);
		return FALSE;
	}
	xj_uint(ans.json, "encap_port", &port);
	xj_uint(ans.json, "seq", &seq);
	this->mutex->lock(this->mutex);
	snprintf(this->epoch, sizeof(this->epoch), "%s", epoch);
	this->encap_port = port;
	this->info_seq = seq;
	this->mutex->unlock(this->mutex);
	answer_free(&ans);

	if (this->flush_on_start)
	{
		int sas = -1, sps = -1;

		/* nothing an earlier charon installed is of use: its keys and IKE
		 * state are gone with it */
		if (api(this, "POST", "/v1/sa/flush?owner=ike", NULL, 0, &ans, err,
				errlen) && ok(&ans) && ans.json)
		{
			sas = json_object_array_length(ans.json);
		}
		answer_free(&ans);
		if (api(this, "POST", "/v1/sp/flush?owner=ike", NULL, 0, &ans, err,
				errlen) && ok(&ans) && ans.json)
		{
			sps = json_object_array_length(ans.json);
		}
		answer_free(&ans);
		if (sas < 0 || sps < 0)
		{
			DBG1(DBG_KNL, "kernel-xdpsec: removing what an earlier charon left "
				 "in xdpsec failed: %s", err);
		}
		else if (sas || sps)
		{
			DBG1(DBG_KNL, "kernel-xdpsec: removed %d SAs and %d policies an "
				 "earlier charon left in xdpsec", sas, sps);
		}
	}
	this->policy_lock->lock(this->policy_lock);
	sync_policies(this);
	this->policy_lock->unlock(this->policy_lock);

	this->mutex->lock(this->mutex);
	this->ready = TRUE;
	this->mutex->unlock(this->mutex);
	this->ready_lock->unlock(this->ready_lock);
	DBG1(DBG_KNL, "kernel-xdpsec: using xdpsec at %s (epoch %s)", this->socket,
		 this->epoch);
	return TRUE;
}

static void sa_key(char *buf, size_t len, uint32_t spi, host_t *dst)
{
	char addr[INET6_ADDRSTRLEN];

	xdpsec_addr(dst, addr, sizeof(addr));
	snprintf(buf, len, "%08x %s", spi, addr);
}

static void tracked_sa_destroy(tracked_sa_t *sa)
{
	sa->dst->destroy(sa->dst);
	free(sa);
}

CALLBACK(tracked_sa_destroy_cb, void,
	tracked_sa_t *sa, const void *key)
{
	(void)key;
	tracked_sa_destroy(sa);
}

/** Follow an SA, replacing one with the same key. Call with mutex. */
static void track(private_kernel_xdpsec_ipsec_t *this, tracked_sa_t *sa)
{
	sa_key(sa->key, sizeof(sa->key), sa->spi, sa->dst);
	sa = this->sas->put(this->sas, sa->key, sa);
	if (sa)
	{
		tracked_sa_destroy(sa);
	}
}

/** Stop following an SA; true if it was followed. Call with mutex. */
static bool untrack(private_kernel_xdpsec_ipsec_t *this, uint32_t spi,
					host_t *dst)
{
	char key[64];
	tracked_sa_t *sa;

	sa_key(key, sizeof(key), spi, dst);
	sa = this->sas->remove(this->sas, key);
	if (!sa)
	{
		return FALSE;
	}
	tracked_sa_destroy(sa);
	return TRUE;
}

/** Write {"spi":..,"dst":..,"proto":50} as member key. */
static void write_said(jw_t *w, const char *key, uint32_t spi, host_t *dst)
{
	char addr[INET6_ADDRSTRLEN];

	xdpsec_addr(dst, addr, sizeof(addr));
	jw_object(w, key);
	jw_uint(w, "spi", spi);
	jw_string(w, "dst", addr);
	jw_uint(w, "proto", IPPROTO_ESP);
	jw_object_end(w);
}

METHOD(kernel_ipsec_t, get_features, kernel_feature_t,
	private_kernel_xdpsec_ipsec_t *this)
{
	(void)this;
	/* TFC padding: yes. Not KERNEL_POLICY_SPI: the card sends on the newest
	 * SA of a policy's reqid, so charon installs a rekeyed outbound SA only
	 * when traffic is to move to it. */
	return KERNEL_ESP_V3_TFC;
}

METHOD(kernel_ipsec_t, get_spi, status_t,
	private_kernel_xdpsec_ipsec_t *this, host_t *src, host_t *dst,
	uint8_t protocol, uint32_t *spi)
{
	char err[XDPSEC_ERRLEN], addr[INET6_ADDRSTRLEN];
	answer_t ans;
	uint64_t value;
	jw_t w;
	bool sent;

	if (protocol != IPPROTO_ESP)
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to allocate an SPI for protocol "
			 "%u: xdpsec offloads ESP only", protocol);
		return NOT_SUPPORTED;
	}
	if (!ensure_ready(this, err, sizeof(err)))
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to allocate an SPI: %s", err);
		return FAILED;
	}
	jw_init(&w);
	jw_object(&w, NULL);
	xdpsec_addr(src, addr, sizeof(addr));
	jw_string(&w, "src", addr);
	xdpsec_addr(dst, addr, sizeof(addr));
	jw_string(&w, "dst", addr);
	jw_uint(&w, "proto", IPPROTO_ESP);
	jw_uint(&w, "min", this->spi_min);
	jw_uint(&w, "max", this->spi_max);
	jw_uint(&w, "lifetime_seconds", this->larval_lifetime);
	jw_object_end(&w);
	sent = api_json(this, "POST", "/v1/spi", &w, &ans, err, sizeof(err));
	jw_wipe(&w);
	if (!sent || !ok(&ans))
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to allocate an SPI: %s", err);
		answer_free(&ans);
		return FAILED;
	}
	if (!xj_uint(ans.json, "spi", &value) || value < this->spi_min ||
		value > this->spi_max)
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to allocate an SPI: the daemon "
			 "answered without an SPI in range");
		answer_free(&ans);
		return FAILED;
	}
	answer_free(&ans);
	*spi = htonl((uint32_t)value);
	DBG2(DBG_KNL, "kernel-xdpsec: got SPI %.8x", (uint32_t)value);
	return SUCCESS;
}

METHOD(kernel_ipsec_t, get_cpi, status_t,
	private_kernel_xdpsec_ipsec_t *this, host_t *src, host_t *dst,
	uint16_t *cpi)
{
	(void)this;
	(void)src;
	(void)dst;
	(void)cpi;
	DBG1(DBG_KNL, "kernel-xdpsec: IPComp is not supported by xdpsec, no CPI "
		 "allocated");
	return NOT_SUPPORTED;
}

/** Why charon's SA parameters cannot be offloaded, or NULL. */
static const char *check_sa(kernel_ipsec_sa_id_t *id,
							kernel_ipsec_add_sa_t *data)
{
	if (id->proto != IPPROTO_ESP)
	{
		return "xdpsec offloads ESP only";
	}
	if (id->mark.value || id->mark.mask || data->mark.value || data->mark.mask)
	{
		return "marks are not supported by xdpsec";
	}
	if (id->if_id)
	{
		return "interface IDs (if_id) are not supported by xdpsec";
	}
	if (data->label)
	{
		return "security labels are not supported by xdpsec";
	}
	if (data->ipcomp != IPCOMP_NONE)
	{
		return "IPComp is not supported by xdpsec";
	}
	if (data->mode != MODE_TUNNEL && data->mode != MODE_TRANSPORT)
	{
		return "xdpsec supports tunnel and transport mode only";
	}
	if (data->interface)
	{
		return "SAs bound to an interface are not supported by xdpsec";
	}
	if (!data->copy_ecn)
	{
		return "xdpsec always propagates ECN (RFC 6040), copy_ecn = no is "
			   "not supported";
	}
	if (data->copy_dscp != DSCP_COPY_OUT_ONLY)
	{
		return "xdpsec copies DSCP outbound only (RFC 4301), set copy_dscp = "
			   "out";
	}
	if (id->src->get_family(id->src) != id->dst->get_family(id->dst))
	{
		return "source and destination of different address families";
	}
	return NULL;
}

static void write_lifetime(jw_t *w, lifetime_cfg_t *lft)
{
	jw_object(w, "lifetime");
	if (lft)
	{
		jw_uint(w, "soft_bytes", lft->bytes.rekey);
		jw_uint(w, "hard_bytes", lft->bytes.life);
		jw_uint(w, "soft_packets", lft->packets.rekey);
		jw_uint(w, "hard_packets", lft->packets.life);
		jw_uint(w, "soft_add_seconds", lft->time.rekey);
		jw_uint(w, "hard_add_seconds", lft->time.life);
	}
	jw_object_end(w);
}

static void write_encap(jw_t *w, bool encap, host_t *src, host_t *dst)
{
	if (!encap)
	{
		jw_null(w, "encap");
		return;
	}
	jw_object(w, "encap");
	jw_string(w, "type", "espinudp");
	jw_uint(w, "sport", src->get_port(src));
	jw_uint(w, "dport", dst->get_port(dst));
	jw_object_end(w);
}

METHOD(kernel_ipsec_t, add_sa, status_t,
	private_kernel_xdpsec_ipsec_t *this, kernel_ipsec_sa_id_t *id,
	kernel_ipsec_add_sa_t *data)
{
	char err[XDPSEC_ERRLEN], addr[INET6_ADDRSTRLEN];
	const char *refusal;
	xdpsec_suite_t suite;
	tracked_sa_t *sa;
	answer_t ans;
	uint32_t spi = ntohl(id->spi);
	jw_t w;
	bool sent;

	refusal = check_sa(id, data);
	if (refusal)
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to add SA with SPI %.8x: %s", spi,
			 refusal);
		return NOT_SUPPORTED;
	}
	if (!xdpsec_map_algorithms(data->enc_alg, data->enc_key.len, data->int_alg,
							   data->int_key.len, &suite, err, sizeof(err)))
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to add SA with SPI %.8x: %N/%N: "
			 "%s", spi, encryption_algorithm_names, data->enc_alg,
			 integrity_algorithm_names, data->int_alg, err);
		return NOT_SUPPORTED;
	}
	if (!ensure_ready(this, err, sizeof(err)))
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to add SA with SPI %.8x: %s", spi,
			 err);
		return FAILED;
	}

	jw_init(&w);
	jw_object(&w, NULL);
	jw_string(&w, "owner", "ike");
	jw_uint(&w, "spi", spi);
	xdpsec_addr(id->src, addr, sizeof(addr));
	jw_string(&w, "src", addr);
	xdpsec_addr(id->dst, addr, sizeof(addr));
	jw_string(&w, "dst", addr);
	jw_uint(&w, "proto", IPPROTO_ESP);
	jw_string(&w, "mode", data->mode == MODE_TUNNEL ? "tunnel" : "transport");
	jw_uint(&w, "reqid", data->reqid);
	jw_string(&w, "dir", data->inbound ? "in" : "out");
	if (suite.aead)
	{
		jw_object(&w, "aead");
		jw_string(&w, "alg", suite.aead);
		jw_hex(&w, "key", data->enc_key.ptr, data->enc_key.len);
		jw_uint(&w, "bits", suite.icv_bits);
		jw_object_end(&w);
	}
	else
	{
		jw_object(&w, "enc");
		jw_string(&w, "alg", suite.enc);
		if (suite.enc_keyed)
		{
			jw_hex(&w, "key", data->enc_key.ptr, data->enc_key.len);
		}
		jw_object_end(&w);
		jw_object(&w, "auth");
		jw_string(&w, "alg", suite.auth);
		jw_hex(&w, "key", data->int_key.ptr, data->int_key.len);
		jw_uint(&w, "bits", suite.trunc_bits);
		jw_object_end(&w);
	}
	jw_bool(&w, "esn", data->esn);
	jw_uint(&w, "replay_window", data->replay_window);
	if (data->encap)
	{
		write_encap(&w, TRUE, id->src, id->dst);
	}
	write_lifetime(&w, data->lifetime);
	jw_string(&w, "df", data->copy_df ? "copy" : "clear");
	if (data->tfc && !data->inbound)
	{
		jw_uint(&w, "tfc_pad", data->tfc);
	}
	jw_object_end(&w);

	DBG2(DBG_KNL, "kernel-xdpsec: adding %s SA with SPI %.8x and reqid {%u}",
		 data->inbound ? "inbound" : "outbound", spi, data->reqid);
	sent = api_json(this, "POST", "/v1/sa", &w, &ans, err, sizeof(err));
	jw_wipe(&w);
	if (!sent || !ok(&ans))
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to add SA with SPI %.8x: %s", spi,
			 err);
		answer_free(&ans);
		return FAILED;
	}
	answer_free(&ans);

	INIT(sa,
		.spi = spi,
		.dst = id->dst->clone(id->dst),
		.inbound = data->inbound,
	);
	this->mutex->lock(this->mutex);
	sa->gen = ++this->gen;
	memcpy(sa->epoch, this->epoch, sizeof(sa->epoch));
	track(this, sa);
	this->mutex->unlock(this->mutex);
	return SUCCESS;
}

METHOD(kernel_ipsec_t, update_sa, status_t,
	private_kernel_xdpsec_ipsec_t *this, kernel_ipsec_sa_id_t *id,
	kernel_ipsec_update_sa_t *data)
{
	char err[XDPSEC_ERRLEN], addr[INET6_ADDRSTRLEN], key[64];
	uint32_t spi = ntohl(id->spi);
	tracked_sa_t *sa;
	answer_t ans;
	jw_t w;
	bool sent;

	if (data->cpi)
	{
		return NOT_SUPPORTED;
	}
	if (!ensure_ready(this, err, sizeof(err)))
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to update SA with SPI %.8x: %s",
			 spi, err);
		return FAILED;
	}
	jw_init(&w);
	jw_object(&w, NULL);
	write_said(&w, "id", spi, id->dst);
	xdpsec_addr(data->new_src, addr, sizeof(addr));
	jw_string(&w, "src", addr);
	xdpsec_addr(data->new_dst, addr, sizeof(addr));
	jw_string(&w, "dst", addr);
	write_encap(&w, data->new_encap, data->new_src, data->new_dst);
	if (data->new_reqid)
	{
		jw_uint(&w, "reqid", data->new_reqid);
	}
	jw_object_end(&w);

	DBG2(DBG_KNL, "kernel-xdpsec: updating SA with SPI %.8x: %#H -> %#H "
		 "encap %d", spi, id->src, data->new_src, data->new_encap);
	sent = api_json(this, "POST", "/v1/sa/migrate", &w, &ans, err, sizeof(err));
	jw_wipe(&w);
	if (sent && unknown_endpoint(&ans))
	{
		/* charon then rekeys the CHILD_SA instead */
		DBG1(DBG_KNL, "kernel-xdpsec: the daemon cannot move SAs (%s), "
			 "charon rekeys instead", err);
		answer_free(&ans);
		return NOT_SUPPORTED;
	}
	if (!sent || !ok(&ans))
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to update SA with SPI %.8x: %s",
			 spi, err);
		answer_free(&ans);
		return FAILED;
	}
	answer_free(&ans);

	if (!id->dst->ip_equals(id->dst, data->new_dst))
	{	/* (SPI, destination) is the SA's identity: follow it */
		sa_key(key, sizeof(key), spi, id->dst);
		this->mutex->lock(this->mutex);
		sa = this->sas->remove(this->sas, key);
		if (sa)
		{
			sa->dst->destroy(sa->dst);
			sa->dst = data->new_dst->clone(data->new_dst);
			track(this, sa);
		}
		this->mutex->unlock(this->mutex);
	}
	return SUCCESS;
}

/** Monotonic time of a wall-clock time the daemon reported. */
static time_t to_monotonic(time_t wall)
{
	time_t now = time(NULL), mono = time_monotonic(NULL);

	if (wall >= now)
	{
		return mono;
	}
	return now - wall >= mono ? 1 : mono - (now - wall);
}

/** The monotonic time of an answer's last_use_time, 0 for never used. */
static time_t last_use(json_object *view)
{
	const char *last = xj_str(view, "last_use_time");
	time_t wall;

	return last && xj_time(last, &wall) ? to_monotonic(wall) : 0;
}

METHOD(kernel_ipsec_t, query_sa, status_t,
	private_kernel_xdpsec_ipsec_t *this, kernel_ipsec_sa_id_t *id,
	kernel_ipsec_query_sa_t *data, uint64_t *bytes, uint64_t *packets,
	time_t *use_time)
{
	char err[XDPSEC_ERRLEN];
	json_object *cur;
	answer_t ans;
	uint64_t b = 0, p = 0;
	jw_t w;
	bool sent;

	(void)data;

	if (!ensure_ready(this, err, sizeof(err)))
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to query SA with SPI %.8x: %s",
			 ntohl(id->spi), err);
		return FAILED;
	}
	jw_init(&w);
	jw_object(&w, NULL);
	jw_object(&w, "ref");
	write_said(&w, "id", ntohl(id->spi), id->dst);
	jw_object_end(&w);
	jw_object_end(&w);
	sent = api_json(this, "POST", "/v1/sa/get", &w, &ans, err, sizeof(err));
	jw_wipe(&w);
	if (!sent || !ok(&ans))
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to query SA with SPI %.8x: %s",
			 ntohl(id->spi), err);
		answer_free(&ans);
		return FAILED;
	}
	cur = xj_member(ans.json, "current", json_type_object);
	if (!cur || !xj_uint(cur, "bytes", &b) || !xj_uint(cur, "packets", &p))
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to query SA with SPI %.8x: answer "
			 "without current counters", ntohl(id->spi));
		answer_free(&ans);
		return FAILED;
	}
	if (bytes)
	{
		*bytes = b;
	}
	if (packets)
	{
		*packets = p;
	}
	if (use_time)
	{
		*use_time = last_use(ans.json);
	}
	answer_free(&ans);
	return SUCCESS;
}

METHOD(kernel_ipsec_t, del_sa, status_t,
	private_kernel_xdpsec_ipsec_t *this, kernel_ipsec_sa_id_t *id,
	kernel_ipsec_del_sa_t *data)
{
	char err[XDPSEC_ERRLEN], epoch[XDPSEC_EPOCH_LEN + 1];
	const char *body;
	uint32_t spi = ntohl(id->spi);
	answer_t ans;
	status_t status = SUCCESS;
	jw_t w;

	(void)data;

	/* forget it first: the deletion's own event is not news for charon */
	this->mutex->lock(this->mutex);
	untrack(this, spi, id->dst);
	memcpy(epoch, this->epoch, sizeof(epoch));
	this->mutex->unlock(this->mutex);

	jw_init(&w);
	jw_object(&w, NULL);
	write_said(&w, "id", spi, id->dst);
	jw_object_end(&w);
	body = jw_result(&w, NULL);

	DBG2(DBG_KNL, "kernel-xdpsec: deleting SA with SPI %.8x", spi);
	if (!body)
	{
		status = FAILED;
	}
	else if (!api(this, "POST", "/v1/sa/delete", body, strlen(body), &ans, err,
				  sizeof(err)))
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to delete SA with SPI %.8x: %s; "
			 "trying again when the daemon answers", spi, err);
		defer(this, "/v1/sa/delete", body, epoch);
		status = FAILED;
	}
	else
	{
		if (ans.status == 404)
		{
			DBG2(DBG_KNL, "kernel-xdpsec: SA with SPI %.8x was gone already",
				 spi);
			status = NOT_FOUND;
		}
		else if (!ok(&ans))
		{
			DBG1(DBG_KNL, "kernel-xdpsec: unable to delete SA with SPI %.8x: "
				 "%s", spi, err);
			status = FAILED;
		}
		answer_free(&ans);
	}
	jw_wipe(&w);
	return status;
}

METHOD(kernel_ipsec_t, flush_sas, status_t,
	private_kernel_xdpsec_ipsec_t *this)
{
	char err[XDPSEC_ERRLEN];
	answer_t ans;
	bool sent;

	this->mutex->lock(this->mutex);
	this->sas->destroy_function(this->sas, tracked_sa_destroy_cb);
	this->sas = hashtable_create(hashtable_hash_str, hashtable_equals_str, 64);
	this->mutex->unlock(this->mutex);

	DBG2(DBG_KNL, "kernel-xdpsec: flushing the SAs charon owns in xdpsec");
	sent = api(this, "POST", "/v1/sa/flush?owner=ike", NULL, 0, &ans, err,
			   sizeof(err));
	if (!sent || !ok(&ans))
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to flush SAs: %s", err);
		answer_free(&ans);
		return FAILED;
	}
	answer_free(&ans);
	return SUCCESS;
}

METHOD(kernel_ipsec_t, add_policy, status_t,
	private_kernel_xdpsec_ipsec_t *this, kernel_ipsec_policy_id_t *id,
	kernel_ipsec_manage_policy_t *data)
{
	char err[XDPSEC_ERRLEN];
	const char *key;
	char *selkey;
	status_t status;
	jw_t w, s;

	jw_init(&w);
	jw_init(&s);
	if (!xdpsec_write_policy(&w, id, data, err, sizeof(err)) ||
		!xdpsec_write_selector_key(&s, id->dir, id->src_ts, id->dst_ts, err,
								   sizeof(err)) ||
		!(key = jw_result(&w, NULL)) || !jw_result(&s, NULL))
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to add policy %R === %R %N: %s",
			 id->src_ts, id->dst_ts, policy_dir_names, id->dir, err);
		jw_wipe(&w);
		jw_wipe(&s);
		return NOT_SUPPORTED;
	}
	if (!ensure_ready(this, err, sizeof(err)))
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to add policy %R === %R %N: %s",
			 id->src_ts, id->dst_ts, policy_dir_names, id->dir, err);
		jw_wipe(&w);
		jw_wipe(&s);
		return FAILED;
	}
	selkey = strdup(jw_result(&s, NULL));
	jw_wipe(&s);

	this->policy_lock->lock(this->policy_lock);
	status = policy_ref(this, key, selkey, FALSE, err, sizeof(err));
	this->policy_lock->unlock(this->policy_lock);
	if (status != SUCCESS)
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to add policy %R === %R %N: %s",
			 id->src_ts, id->dst_ts, policy_dir_names, id->dir, err);
	}
	else
	{
		DBG2(DBG_KNL, "kernel-xdpsec: added policy %R === %R %N", id->src_ts,
			 id->dst_ts, policy_dir_names, id->dir);
	}
	jw_wipe(&w);
	return status;
}

METHOD(kernel_ipsec_t, query_policy, status_t,
	private_kernel_xdpsec_ipsec_t *this, kernel_ipsec_policy_id_t *id,
	kernel_ipsec_query_policy_t *data, time_t *use_time)
{
	char err[XDPSEC_ERRLEN], target[160], body[96];
	char epoch[XDPSEC_EPOCH_LEN + 1] = "";
	enumerator_t *enumerator;
	policy_entry_t *entry, *best = NULL;
	const char *selkey;
	uint32_t pid = 0;
	answer_t ans;
	jw_t s;

	(void)data;

	jw_init(&s);
	if (!xdpsec_write_selector_key(&s, id->dir, id->src_ts, id->dst_ts, err,
								   sizeof(err)) ||
		!(selkey = jw_result(&s, NULL)))
	{
		jw_wipe(&s);
		return NOT_SUPPORTED;
	}
	/* the card matches the entry the daemon orders first: the lowest
	 * priority number, the newest on a tie */
	this->policy_lock->lock(this->policy_lock);
	enumerator = this->policies->create_enumerator(this->policies);
	while (enumerator->enumerate(enumerator, NULL, &entry))
	{
		if (entry->id && streq(entry->selkey, selkey) &&
			(!best || entry->priority < best->priority ||
			 (entry->priority == best->priority && entry->order > best->order)))
		{
			best = entry;
		}
	}
	enumerator->destroy(enumerator);
	if (best)
	{
		pid = best->id;
		memcpy(epoch, best->epoch, sizeof(epoch));
	}
	this->policy_lock->unlock(this->policy_lock);
	jw_wipe(&s);
	if (!pid)
	{
		DBG2(DBG_KNL, "kernel-xdpsec: unable to query policy %R === %R %N: not "
			 "installed", id->src_ts, id->dst_ts, policy_dir_names, id->dir);
		return NOT_FOUND;
	}
	epoch_target(target, sizeof(target), "/v1/sp/get", epoch);
	snprintf(body, sizeof(body), "{\"ref\":{\"id\":%u}}", pid);
	if (!api(this, "POST", target, body, strlen(body), &ans, err, sizeof(err))
		|| !ok(&ans))
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to query policy %R === %R %N: %s",
			 id->src_ts, id->dst_ts, policy_dir_names, id->dir, err);
		answer_free(&ans);
		return FAILED;
	}
	*use_time = last_use(ans.json);
	answer_free(&ans);
	return SUCCESS;
}

METHOD(kernel_ipsec_t, del_policy, status_t,
	private_kernel_xdpsec_ipsec_t *this, kernel_ipsec_policy_id_t *id,
	kernel_ipsec_manage_policy_t *data)
{
	char err[XDPSEC_ERRLEN];
	const char *key;
	status_t status;
	jw_t w;

	jw_init(&w);
	if (!xdpsec_write_policy(&w, id, data, err, sizeof(err)) ||
		!(key = jw_result(&w, NULL)))
	{
		/* refused when added: there is nothing to delete */
		jw_wipe(&w);
		return NOT_FOUND;
	}
	this->policy_lock->lock(this->policy_lock);
	status = policy_unref(this, key, err, sizeof(err));
	this->policy_lock->unlock(this->policy_lock);
	if (status == NOT_FOUND)
	{
		DBG1(DBG_KNL, "kernel-xdpsec: deleting policy %R === %R %N failed, not "
			 "found", id->src_ts, id->dst_ts, policy_dir_names, id->dir);
	}
	else if (status != SUCCESS)
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to delete policy %R === %R %N: %s",
			 id->src_ts, id->dst_ts, policy_dir_names, id->dir, err);
	}
	jw_wipe(&w);
	return status;
}

METHOD(kernel_ipsec_t, flush_policies, status_t,
	private_kernel_xdpsec_ipsec_t *this)
{
	char err[XDPSEC_ERRLEN];
	enumerator_t *enumerator;
	policy_entry_t *entry;
	answer_t ans;
	bool sent;

	DBG2(DBG_KNL, "kernel-xdpsec: flushing the policies charon owns in xdpsec");
	this->policy_lock->lock(this->policy_lock);
	sent = api(this, "POST", "/v1/sp/flush?owner=ike", NULL, 0, &ans, err,
			   sizeof(err));
	if (sent && ok(&ans))
	{
		/* the IKE sockets' bypass policies stay wanted: mark everything
		 * uninstalled, drop what is not a bypass, install the rest again */
		enumerator = this->policies->create_enumerator(this->policies);
		while (enumerator->enumerate(enumerator, NULL, &entry))
		{
			entry->id = 0;
			if (*entry->selkey)
			{
				this->policies->remove_at(this->policies, enumerator);
				policy_entry_destroy(entry);
			}
		}
		enumerator->destroy(enumerator);
		sync_policies(this);
	}
	this->policy_lock->unlock(this->policy_lock);
	if (!sent || !ok(&ans))
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to flush policies: %s", err);
		answer_free(&ans);
		return FAILED;
	}
	answer_free(&ans);
	return SUCCESS;
}

/** Add or drop the two bypass policies of an IKE socket. */
static bool manage_bypass(private_kernel_xdpsec_ipsec_t *this, int family,
						  uint16_t port, bool add, char *err, size_t errlen)
{
	policy_dir_t dirs[] = { POLICY_IN, POLICY_OUT };
	bool success = TRUE;
	jw_t w;
	u_int i;

	for (i = 0; i < countof(dirs); i++)
	{
		jw_init(&w);
		xdpsec_write_bypass(&w, family, port, dirs[i]);
		if (!jw_result(&w, NULL))
		{
			success = FALSE;
		}
		else if (add)
		{
			char *selkey = strdup("");

			if (policy_ref(this, jw_result(&w, NULL), selkey, TRUE, err,
						   errlen) != SUCCESS)
			{
				success = FALSE;
			}
		}
		else if (policy_unref(this, jw_result(&w, NULL), err, errlen)
				 != SUCCESS)
		{
			success = FALSE;
		}
		jw_wipe(&w);
	}
	return success;
}

METHOD(kernel_ipsec_t, bypass_socket, bool,
	private_kernel_xdpsec_ipsec_t *this, int fd, int family)
{
	char err[XDPSEC_ERRLEN] = "";
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	bypass_t *bypass;
	uint16_t port;
	bool installed;

	if (getsockname(fd, (struct sockaddr*)&addr, &len) != 0)
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to read the IKE socket's port: %s",
			 strerror(errno));
		return FALSE;
	}
	switch (addr.ss_family)
	{
		case AF_INET:
			port = ntohs(((struct sockaddr_in*)&addr)->sin_port);
			break;
		case AF_INET6:
			port = ntohs(((struct sockaddr_in6*)&addr)->sin6_port);
			break;
		default:
			return FALSE;
	}
	INIT(bypass,
		.family = family,
		.port = port,
	);
	/* a daemon that is away gets them on first contact */
	if (!ensure_ready(this, err, sizeof(err)))
	{
		this->policy_lock->lock(this->policy_lock);
		manage_bypass(this, family, port, TRUE, err + strlen(err),
					  sizeof(err) - strlen(err));
		this->bypasses->insert_last(this->bypasses, bypass);
		this->policy_lock->unlock(this->policy_lock);
		DBG1(DBG_KNL, "kernel-xdpsec: IKE bypass policies for UDP port %u not "
			 "installed yet (%s); installing them when xdpsec answers", port,
			 err);
		return FALSE;
	}
	this->policy_lock->lock(this->policy_lock);
	installed = manage_bypass(this, family, port, TRUE, err, sizeof(err));
	this->bypasses->insert_last(this->bypasses, bypass);
	this->policy_lock->unlock(this->policy_lock);
	if (!installed)
	{
		DBG1(DBG_KNL, "kernel-xdpsec: installing IKE bypass policies for UDP "
			 "port %u failed (%s); trying again when xdpsec answers", port,
			 err);
		return FALSE;
	}
	DBG2(DBG_KNL, "kernel-xdpsec: IKE on UDP port %u bypasses xdpsec", port);
	return TRUE;
}

METHOD(kernel_ipsec_t, enable_udp_decap, bool,
	private_kernel_xdpsec_ipsec_t *this, int fd, int family, uint16_t port)
{
	char err[XDPSEC_ERRLEN];
	uint16_t card_port;

	(void)fd;
	(void)family;

	if (!ensure_ready(this, err, sizeof(err)))
	{
		/* the card's port is fixed when xdpsec starts, 4500 unless set */
		DBG1(DBG_KNL, "kernel-xdpsec: cannot check xdpsec's ESP-in-UDP port "
			 "now (%s); assuming the default 4500", err);
		card_port = 4500;
	}
	else
	{
		this->mutex->lock(this->mutex);
		card_port = this->encap_port;
		this->mutex->unlock(this->mutex);
	}
	if (port != card_port)
	{
		DBG1(DBG_KNL, "kernel-xdpsec: xdpsec decapsulates ESP-in-UDP on port "
			 "%u only, not on charon's NAT-T port %u: set charon.port_nat_t = "
			 "%u", card_port, port, card_port);
		return FALSE;
	}
	/* the card takes ESP-in-UDP on this port and passes IKE (non-ESP
	 * marker) on to charon's socket through the bypass policies */
	return TRUE;
}

/**
 * Raise charon's expire for each SA in list (tracked_sa_t copies); frees it.
 */
static void raise_expires(linked_list_t *list, bool hard)
{
	tracked_sa_t *sa;

	while (list->remove_first(list, (void**)&sa) == SUCCESS)
	{
		DBG1(DBG_KNL, "kernel-xdpsec: %s expiry of SA with SPI %.8x to %H",
			 hard ? "hard" : "soft", sa->spi, sa->dst);
		charon->kernel->expire(charon->kernel, IPPROTO_ESP, htonl(sa->spi),
							   sa->dst, hard);
		tracked_sa_destroy(sa);
	}
	list->destroy(list);
}

static tracked_sa_t *copy_sa(tracked_sa_t *sa)
{
	tracked_sa_t *copy;

	INIT(copy,
		.spi = sa->spi,
		.dst = sa->dst->clone(sa->dst),
		.inbound = sa->inbound,
	);
	return copy;
}

/** Handle an expiry or deletion event of an SA. */
static void sa_event(private_kernel_xdpsec_ipsec_t *this, json_object *ev,
					 bool hard)
{
	const char *dst_str = xj_str(ev, "dst");
	linked_list_t *raise;
	tracked_sa_t *sa;
	char key[64];
	uint64_t spi;
	host_t *dst;

	if (!dst_str || !xj_uint(ev, "spi", &spi) || spi > UINT32_MAX)
	{
		return;
	}
	dst = host_create_from_string((char*)dst_str, 0);
	if (!dst)
	{
		return;
	}
	raise = linked_list_create();
	sa_key(key, sizeof(key), spi, dst);
	this->mutex->lock(this->mutex);
	sa = this->sas->get(this->sas, key);
	if (sa && !sa->lost)
	{
		if (hard)
		{
			raise->insert_last(raise, copy_sa(sa));
			untrack(this, spi, dst);
		}
		else if (!sa->soft_raised)
		{
			sa->soft_raised = TRUE;
			raise->insert_last(raise, copy_sa(sa));
		}
	}
	this->mutex->unlock(this->mutex);
	dst->destroy(dst);
	raise_expires(raise, hard);
}

/** An ACQUIRE: a packet met a trap policy without an SA. */
static void acquire_event(private_kernel_xdpsec_ipsec_t *this,
						  json_object *ev)
{
	(void)this;
	const char *src = xj_str(ev, "src"), *dst = xj_str(ev, "dst");
	kernel_acquire_data_t data = {};
	uint64_t reqid = 0, proto = 0, sport = 0, dport = 0;
	host_t *s, *d;

	if (!xj_uint(ev, "reqid", &reqid) || !reqid || reqid > UINT32_MAX)
	{
		DBG2(DBG_KNL, "kernel-xdpsec: ignoring an acquire without reqid");
		return;
	}
	xj_uint(ev, "proto", &proto);
	xj_uint(ev, "sport", &sport);
	xj_uint(ev, "dport", &dport);
	s = src ? host_create_from_string((char*)src, 0) : NULL;
	d = dst ? host_create_from_string((char*)dst, 0) : NULL;
	if (s && d && s->get_family(s) == d->get_family(d) && proto < 256 &&
		sport < 65536 && dport < 65536)
	{
		/* the packet's addresses and ports narrow the CHILD_SA charon
		 * negotiates for a trap policy, as with XFRM's acquires */
		data.src = traffic_selector_create_from_bytes(proto,
							s->get_family(s) == AF_INET ? TS_IPV4_ADDR_RANGE
														: TS_IPV6_ADDR_RANGE,
							s->get_address(s), sport ?: 0,
							s->get_address(s), sport ?: 0xffff);
		data.dst = traffic_selector_create_from_bytes(proto,
							d->get_family(d) == AF_INET ? TS_IPV4_ADDR_RANGE
														: TS_IPV6_ADDR_RANGE,
							d->get_address(d), dport ?: 0,
							d->get_address(d), dport ?: 0xffff);
	}
	DBG2(DBG_KNL, "kernel-xdpsec: acquire for reqid {%u}", (uint32_t)reqid);
	charon->kernel->acquire(charon->kernel, reqid, &data);
	DESTROY_IF(data.src);
	DESTROY_IF(data.dst);
	DESTROY_IF(s);
	DESTROY_IF(d);
}

CALLBACK(on_event, void,
	private_kernel_xdpsec_ipsec_t *this, json_object *ev)
{
	const char *type = xj_str(ev, "type");

	if (!type)
	{
		return;
	}
	if (streq(type, "acquire"))
	{
		acquire_event(this, ev);
	}
	else if (streq(type, "sa-soft-expired"))
	{
		sa_event(this, ev, FALSE);
	}
	else if (streq(type, "sa-hard-expired") || streq(type, "sa-deleted"))
	{
		/* an SA of ours deleted by someone else is gone for charon too */
		sa_event(this, ev, TRUE);
	}
	else if (streq(type, "offload-nacked"))
	{
		const char *reason = xj_str(ev, "reason") ?: "";
		uint64_t spi = 0;

		/* charon adds an inbound SA before the policies that check its
		 * traffic: the card takes it when they come, that is no news */
		if (xj_uint(ev, "spi", &spi) && spi &&
			!streq(reason, "no_inbound_policy"))
		{
			DBG1(DBG_KNL, "kernel-xdpsec: xdpsec's card refused SA with SPI "
				 "%.8x on %s: %s %s", (uint32_t)spi, xj_str(ev, "iface") ?: "?",
				 reason, xj_str(ev, "detail") ?: "");
		}
		else if (spi)
		{
			DBG2(DBG_KNL, "kernel-xdpsec: SA with SPI %.8x waits for its "
				 "inbound policy", (uint32_t)spi);
		}
	}
}

CALLBACK(on_prepare, bool,
	private_kernel_xdpsec_ipsec_t *this, char **epoch, uint64_t *seq,
	char *err, size_t errlen)
{
	if (!ensure_ready(this, err, errlen))
	{
		return FALSE;
	}
	this->mutex->lock(this->mutex);
	*epoch = strdup(this->epoch);
	*seq = this->info_seq;
	this->mutex->unlock(this->mutex);
	return TRUE;
}

/**
 * The daemon restarted and lost what charon installed: install the
 * policies again and have charon rekey every CHILD_SA, whose keys only a
 * new negotiation can bring back.
 */
CALLBACK(on_epoch, void,
	private_kernel_xdpsec_ipsec_t *this, const char *old, const char *epoch)
{
	enumerator_t *enumerator;
	linked_list_t *raise;
	tracked_sa_t *sa;
	deferred_t *d;

	if (!old)
	{
		return;
	}
	DBG1(DBG_KNL, "kernel-xdpsec: xdpsec restarted (epoch %s, was %s): "
		 "installing charon's policies again and rekeying its CHILD_SAs",
		 epoch, old);
	set_epoch(this, epoch);
	this->policy_lock->lock(this->policy_lock);
	sync_policies(this);
	this->policy_lock->unlock(this->policy_lock);

	raise = linked_list_create();
	this->mutex->lock(this->mutex);
	enumerator = this->sas->create_enumerator(this->sas);
	while (enumerator->enumerate(enumerator, NULL, &sa))
	{
		if (!streq(sa->epoch, epoch) && !sa->lost)
		{
			sa->lost = TRUE;
			/* one expiry per CHILD_SA: its inbound SA */
			if (sa->inbound)
			{
				raise->insert_last(raise, copy_sa(sa));
			}
		}
	}
	enumerator->destroy(enumerator);
	/* deletions meant for the old daemon have nothing left to delete */
	while (this->deferred->remove_first(this->deferred, (void**)&d) == SUCCESS)
	{
		deferred_destroy(d);
	}
	this->mutex->unlock(this->mutex);
	raise_expires(raise, FALSE);
}

/**
 * Events were lost: read the SAs again and raise what charon missed, soft
 * expiries (a rekey lost would let an SA run into its hard limit) and
 * deletions.
 */
CALLBACK(on_resync, void,
	private_kernel_xdpsec_ipsec_t *this, const char *reason)
{
	char err[XDPSEC_ERRLEN], key[64], epoch[XDPSEC_EPOCH_LEN + 1];
	linked_list_t *soft, *hard;
	enumerator_t *enumerator;
	hashtable_t *present;
	tracked_sa_t *sa;
	answer_t ans;
	uint64_t gen;
	size_t i, n;

	DBG1(DBG_KNL, "kernel-xdpsec: events were lost (%s), reading xdpsec's SAs "
		 "again", reason);
	this->mutex->lock(this->mutex);
	gen = this->gen;
	this->mutex->unlock(this->mutex);
	if (!api(this, "GET", "/v1/sa?owner=ike", NULL, 0, &ans, err, sizeof(err))
		|| !ok(&ans) || !json_object_is_type(ans.json, json_type_array))
	{
		DBG1(DBG_KNL, "kernel-xdpsec: reading SAs failed: %s", err);
		answer_free(&ans);
		return;
	}
	get_epoch(this, epoch);
	present = hashtable_create(hashtable_hash_str, hashtable_equals_str, 64);
	n = json_object_array_length(ans.json);
	for (i = 0; i < n; i++)
	{
		json_object *v = json_object_array_get_idx(ans.json, i);
		const char *dst = xj_str(v, "dst"), *state = xj_str(v, "state");
		uint64_t spi;
		host_t *h;

		if (!dst || !xj_uint(v, "spi", &spi) || spi > UINT32_MAX)
		{
			continue;
		}
		h = host_create_from_string((char*)dst, 0);
		if (h)
		{
			sa_key(key, sizeof(key), spi, h);
			h->destroy(h);
			free(present->put(present, strdup(key),
							  strdup(state ? state : "")));
		}
	}
	answer_free(&ans);

	soft = linked_list_create();
	hard = linked_list_create();
	this->mutex->lock(this->mutex);
	enumerator = this->sas->create_enumerator(this->sas);
	while (enumerator->enumerate(enumerator, NULL, &sa))
	{
		const char *state;

		/* SAs added while we read may not be in the list */
		if (sa->gen > gen || sa->lost || !streq(sa->epoch, epoch))
		{
			continue;
		}
		sa_key(key, sizeof(key), sa->spi, sa->dst);
		state = present->get(present, key);
		if (!state)
		{
			hard->insert_last(hard, copy_sa(sa));
		}
		else if (streq(state, "dying") && !sa->soft_raised)
		{
			sa->soft_raised = TRUE;
			soft->insert_last(soft, copy_sa(sa));
		}
	}
	enumerator->destroy(enumerator);
	enumerator = hard->create_enumerator(hard);
	while (enumerator->enumerate(enumerator, &sa))
	{
		untrack(this, sa->spi, sa->dst);
	}
	enumerator->destroy(enumerator);
	this->mutex->unlock(this->mutex);

	enumerator = present->create_enumerator(present);
	{
		char *k, *v;

		while (enumerator->enumerate(enumerator, &k, &v))
		{
			free(k);
			free(v);
		}
	}
	enumerator->destroy(enumerator);
	present->destroy(present);
	raise_expires(soft, FALSE);
	raise_expires(hard, TRUE);
}

/** Deletions that failed earlier, now that the daemon answers again. */
static void retry_deferred(private_kernel_xdpsec_ipsec_t *this)
{
	char err[XDPSEC_ERRLEN];
	linked_list_t *list;
	deferred_t *d;
	answer_t ans;

	this->mutex->lock(this->mutex);
	list = this->deferred;
	this->deferred = linked_list_create();
	this->mutex->unlock(this->mutex);
	while (list->remove_first(list, (void**)&d) == SUCCESS)
	{
		char epoch[XDPSEC_EPOCH_LEN + 1];

		get_epoch(this, epoch);
		if (streq(d->epoch, epoch))
		{
			if (api(this, "POST", d->target, d->body, strlen(d->body), &ans,
					err, sizeof(err)))
			{
				DBG1(DBG_KNL, "kernel-xdpsec: deleted %s in xdpsec now", d->body);
				answer_free(&ans);
			}
			else
			{
				defer(this, d->target, d->body, d->epoch);
			}
		}
		deferred_destroy(d);
	}
	list->destroy(list);
}

CALLBACK(on_status, void,
	private_kernel_xdpsec_ipsec_t *this, const char *err)
{
	if (err)
	{
		DBG1(DBG_KNL, "kernel-xdpsec: not following xdpsec's events: %s", err);
		return;
	}
	DBG2(DBG_KNL, "kernel-xdpsec: following xdpsec's events");
	retry_deferred(this);
}

static void *events_main(private_kernel_xdpsec_ipsec_t *this)
{
	xdpsec_events_run(this->events);
	return NULL;
}

METHOD(kernel_ipsec_t, destroy, void,
	private_kernel_xdpsec_ipsec_t *this)
{
	char err[XDPSEC_ERRLEN];
	bypass_t *bypass;
	deferred_t *d;

	if (this->events_thread)
	{
		xdpsec_events_stop(this->events);
		this->events_thread->join(this->events_thread);
	}
	xdpsec_events_destroy(this->events);
	/* charon deleted its SAs and policies already; the IKE sockets' bypass
	 * policies are ours to remove */
	this->policy_lock->lock(this->policy_lock);
	while (this->bypasses->remove_first(this->bypasses,
										(void**)&bypass) == SUCCESS)
	{
		manage_bypass(this, bypass->family, bypass->port, FALSE, err,
					  sizeof(err));
		free(bypass);
	}
	this->policy_lock->unlock(this->policy_lock);
	this->bypasses->destroy(this->bypasses);
	this->policies->destroy_function(this->policies, policy_entry_destroy_cb);
	this->sas->destroy_function(this->sas, tracked_sa_destroy_cb);
	while (this->deferred->remove_first(this->deferred, (void**)&d) == SUCCESS)
	{
		deferred_destroy(d);
	}
	this->deferred->destroy(this->deferred);
	this->policy_lock->destroy(this->policy_lock);
	this->ready_lock->destroy(this->ready_lock);
	this->mutex->destroy(this->mutex);
	xc_client_destroy(this->client);
	free(this->socket);
	free(this);
}

/*
 * Described in header
 */
kernel_xdpsec_ipsec_t *kernel_xdpsec_ipsec_create()
{
	private_kernel_xdpsec_ipsec_t *this;
	xdpsec_events_cb_t cb = {
		.prepare = (void*)on_prepare,
		.event = (void*)on_event,
		.epoch = (void*)on_epoch,
		.resync = (void*)on_resync,
		.status = (void*)on_status,
	};
	char *instance, *socket;
	uint32_t spi_min, spi_max;
	int timeout, connect_wait;

	instance = lib->settings->get_str(lib->settings,
					"%s.plugins.kernel-xdpsec.instance", DEFAULT_INSTANCE,
					lib->ns);
	socket = lib->settings->get_str(lib->settings,
					"%s.plugins.kernel-xdpsec.socket", NULL, lib->ns);
	timeout = lib->settings->get_int(lib->settings,
					"%s.plugins.kernel-xdpsec.timeout", 5000, lib->ns);
	connect_wait = lib->settings->get_int(lib->settings,
					"%s.plugins.kernel-xdpsec.connect_wait", 1000, lib->ns);
	spi_min = lib->settings->get_int(lib->settings, "%s.spi_min",
									 KERNEL_SPI_MIN, lib->ns);
	spi_max = lib->settings->get_int(lib->settings, "%s.spi_max",
									 KERNEL_SPI_MAX, lib->ns);

	INIT(this,
		.public = {
			.interface = {
				.get_features = _get_features,
				.get_spi = _get_spi,
				.get_cpi = _get_cpi,
				.add_sa = _add_sa,
				.update_sa = _update_sa,
				.query_sa = _query_sa,
				.del_sa = _del_sa,
				.flush_sas = _flush_sas,
				.add_policy = _add_policy,
				.query_policy = _query_policy,
				.del_policy = _del_policy,
				.flush_policies = _flush_policies,
				.bypass_socket = _bypass_socket,
				.enable_udp_decap = _enable_udp_decap,
				.destroy = _destroy,
			},
		},
		.larval_lifetime = lib->settings->get_time(lib->settings,
					"%s.plugins.kernel-xdpsec.larval_lifetime", 165, lib->ns),
		.spi_min = min(spi_min, spi_max),
		.spi_max = max(spi_min, spi_max),
		.flush_on_start = lib->settings->get_bool(lib->settings,
					"%s.plugins.kernel-xdpsec.flush_on_start", TRUE, lib->ns),
		.mutex = mutex_create(MUTEX_TYPE_DEFAULT),
		.ready_lock = mutex_create(MUTEX_TYPE_DEFAULT),
		.policy_lock = mutex_create(MUTEX_TYPE_DEFAULT),
		.sas = hashtable_create(hashtable_hash_str, hashtable_equals_str, 64),
		.policies = hashtable_create(hashtable_hash_str, hashtable_equals_str,
									 64),
		.bypasses = linked_list_create(),
		.deferred = linked_list_create(),
	);
	if (socket)
	{
		this->socket = strdup(socket);
	}
	else if (asprintf(&this->socket, "/run/xdpsec/%s.sock", instance) < 0)
	{
		this->socket = NULL;
	}
	this->client = xc_client_create(this->socket ?: "", timeout, connect_wait);
	this->events = xdpsec_events_create(this->client, "owner=ike", &cb, this,
										3 * KEEPALIVE_MS, 5000);
	if (!this->socket || !this->client || !this->events)
	{
		DBG1(DBG_KNL, "kernel-xdpsec: out of memory");
		destroy(this);
		return NULL;
	}
	this->events_thread = thread_create((thread_main_t)events_main, this);
	if (!this->events_thread)
	{
		DBG1(DBG_KNL, "kernel-xdpsec: unable to start the event thread: "
			 "charon would miss expiries, refusing to run");
		destroy(this);
		return NULL;
	}
	DBG1(DBG_KNL, "kernel-xdpsec: SAs and policies go to xdpsec at %s",
		 this->socket);
	return &this->public;
}
