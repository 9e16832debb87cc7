/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The event follower against the fake daemon: delivery in order without
 * duplicates across reconnects, resync when the backlog overflowed, a
 * restarted daemon (new epoch), idle reconnects, and a prepare hook that
 * holds the first connection back.
 */

#define _GNU_SOURCE

#include "test.h"
#include "fake.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "../xdpsec_events.h"
#include "../xdpsec_json.h"

#define MAX_SEEN 64

typedef struct {
	pthread_mutex_t lock;
	uint64_t seqs[MAX_SEEN];
	char types[MAX_SEEN][32];
	int events;
	int resyncs;
	int epochs;
	char old_epoch[80];
	char new_epoch[80];
	int connected;
	int broken;
	/* prepare: refuse this many times, then seed with (epoch, seq) */
	int refuse;
	int prepared;
	char seed_epoch[80];
	uint64_t seed_seq;
} seen_t;

static void on_event(void *ctx, json_object *ev)
{
	seen_t *s = ctx;
	uint64_t seq = 0;

	pthread_mutex_lock(&s->lock);
	xj_uint(ev, "seq", &seq);
	if (s->events < MAX_SEEN)
	{
		s->seqs[s->events] = seq;
		snprintf(s->types[s->events], sizeof(s->types[0]), "%s",
				 xj_str(ev, "type") ?: "");
	}
	s->events++;
	pthread_mutex_unlock(&s->lock);
}

static void on_epoch(void *ctx, const char *old, const char *epoch)
{
	seen_t *s = ctx;

	pthread_mutex_lock(&s->lock);
	s->epochs++;
	snprintf(s->old_epoch, sizeof(s->old_epoch), "%s", old ?: "");
	snprintf(s->new_epoch, sizeof(s->new_epoch), "%s", epoch);
	pthread_mutex_unlock(&s->lock);
}

static void on_resync(void *ctx, const char *reason)
{
	seen_t *s = ctx;

	(void)reason;
	pthread_mutex_lock(&s->lock);
	s->resyncs++;
	pthread_mutex_unlock(&s->lock);
}

static void on_status(void *ctx, const char *err)
{
	seen_t *s = ctx;

	pthread_mutex_lock(&s->lock);
	if (err)
	{
		s->broken++;
	}
	else
	{
		s->connected++;
	}
	pthread_mutex_unlock(&s->lock);
}

static bool on_prepare(void *ctx, char **epoch, uint64_t *seq, char *err,
					   size_t errlen)
{
	seen_t *s = ctx;
	bool ok;

	pthread_mutex_lock(&s->lock);
	s->prepared++;
	ok = s->prepared > s->refuse;
	if (ok)
	{
		*epoch = strdup(s->seed_epoch);
		*seq = s->seed_seq;
	}
	else
	{
		snprintf(err, errlen, "not ready");
	}
	pthread_mutex_unlock(&s->lock);
	return ok;
}

typedef struct {
	xdpsec_events_t *ev;
	xc_client_t *client;
	pthread_t thread;
	seen_t seen;
} follower_t;

static void *follow_main(void *arg)
{
	xdpsec_events_run(arg);
	return NULL;
}

static bool follower_start(follower_t *fl, fake_t *f, bool prepare, int idle_ms)
{
	xdpsec_events_cb_t cb = {
		.event = on_event,
		.epoch = on_epoch,
		.resync = on_resync,
		.status = on_status,
		.prepare = prepare ? on_prepare : NULL,
	};

	pthread_mutex_init(&fl->seen.lock, NULL);
	fl->client = xc_client_create(f->path, 2000, 0);
	fl->ev = xdpsec_events_create(fl->client, "owner=ike", &cb, &fl->seen,
								  idle_ms, 300);
	return fl->ev && pthread_create(&fl->thread, NULL, follow_main,
									fl->ev) == 0;
}

static void follower_stop(follower_t *fl)
{
	xdpsec_events_stop(fl->ev);
	pthread_join(fl->thread, NULL);
	xdpsec_events_destroy(fl->ev);
	xc_client_destroy(fl->client);
	pthread_mutex_destroy(&fl->seen.lock);
}

typedef struct {
	seen_t *seen;
	int n;
} want_t;

static bool has_events(void *ctx)
{
	want_t *w = ctx;
	bool ok;

	pthread_mutex_lock(&w->seen->lock);
	ok = w->seen->events >= w->n;
	pthread_mutex_unlock(&w->seen->lock);
	return ok;
}

static bool has_connected(void *ctx)
{
	want_t *w = ctx;
	bool ok;

	pthread_mutex_lock(&w->seen->lock);
	ok = w->seen->connected >= w->n;
	pthread_mutex_unlock(&w->seen->lock);
	return ok;
}

static bool publish(fake_t *f, const char *type, const char *owner)
{
	return fake_post(f, "/_fake/event", "{\"type\":\"%s\",\"owner\":\"%s\"}",
					 type, owner);
}

/* every event of owner ike arrives once and in order, also those published
 * while the follower was disconnected */
static void test_resume(void)
{
	follower_t fl = {};
	want_t w = { .seen = &fl.seen };
	fake_t f;
	int i;

	fake_init(&f, "ev-resume");
	CHECK(fake_start(&f, NULL));
	CHECK(publish(&f, "sa-added", "ike"));	   /* 1 */
	CHECK(publish(&f, "sa-added", "config")); /* 2: not ours */
	CHECK(follower_start(&fl, &f, false, 5000));
	w.n = 1;
	CHECK(wait_until(has_events, &w, 5000));

	/* cut the stream and keep the follower out while events happen */
	CHECK(fake_post(&f, "/_fake/fault", "{\"path\":\"/v1/events\",\"mode\":"
					"\"status\",\"status\":503,\"count\":3,\"body\":"
					"\"{\\\"error\\\":\\\"busy\\\",\\\"kind\\\":\\\"internal\\\"}\"}"));
	CHECK(fake_post(&f, "/_fake/streams/close", "{}"));
	CHECK(publish(&f, "sa-soft-expired", "ike")); /* 3 */
	CHECK(publish(&f, "acquire", "cli"));		 /* 4: not ours */
	CHECK(publish(&f, "sa-hard-expired", "ike")); /* 5 */
	w.n = 3;
	CHECK(wait_until(has_events, &w, 10000));
	CHECK(publish(&f, "acquire", "ike")); /* 6, live */
	w.n = 4;
	CHECK(wait_until(has_events, &w, 5000));
	usleep(300000);
	follower_stop(&fl);
	fake_stop(&f);

	CHECK_INT(fl.seen.events, 4);
	{
		uint64_t want[] = { 1, 3, 5, 6 };
		const char *types[] = { "sa-added", "sa-soft-expired",
								"sa-hard-expired", "acquire" };

		for (i = 0; i < 4; i++)
		{
			CHECK_INT(fl.seen.seqs[i], want[i]);
			CHECK_STR(fl.seen.types[i], types[i]);
		}
	}
	/* it was refused three times and came back; no resync was needed */
	CHECK_INT(fl.seen.resyncs, 0);
	CHECK(fl.seen.broken >= 3);
	CHECK_INT(fl.seen.connected, 2);
	/* the first stream told the epoch, nothing changed it since */
	CHECK_INT(fl.seen.epochs, 1);
	CHECK_STR(fl.seen.old_epoch, "");
}

/* more events than the daemon keeps while the follower cannot read: one
 * resync, then the events the backlog still holds */
static void test_resync(void)
{
	follower_t fl = {};
	want_t w = { .seen = &fl.seen, .n = 1 };
	fake_t f;
	int i;

	fake_init(&f, "ev-resync");
	CHECK(fake_start(&f, "--backlog 4"));
	CHECK(follower_start(&fl, &f, false, 5000));
	CHECK(wait_until(has_connected, &w, 5000));
	CHECK(fake_post(&f, "/_fake/streams", "{\"paused\":true}"));
	for (i = 0; i < 10; i++)
	{
		CHECK(publish(&f, "sa-soft-expired", "ike"));
	}
	CHECK(fake_post(&f, "/_fake/streams", "{\"paused\":false}"));
	w.n = 4;
	CHECK(wait_until(has_events, &w, 5000));
	usleep(300000);
	follower_stop(&fl);
	fake_stop(&f);
	CHECK_INT(fl.seen.resyncs, 1);
	CHECK_INT(fl.seen.events, 4);
	for (i = 0; i < 4; i++)
	{
		CHECK_INT(fl.seen.seqs[i], 7 + i);
	}
}

/* a daemon killed and started again is a new epoch: told once, and its
 * events from its first one on */
static void test_daemon_restart(void)
{
	follower_t fl = {};
	want_t w = { .seen = &fl.seen, .n = 1 };
	fake_t f;
	char first[80];

	fake_init(&f, "ev-restart");
	CHECK(fake_start(&f, "--epoch aaaa"));
	CHECK(follower_start(&fl, &f, false, 5000));
	CHECK(wait_until(has_connected, &w, 5000));
	CHECK(publish(&f, "sa-added", "ike"));
	CHECK(publish(&f, "sa-added", "ike"));
	w.n = 2;
	CHECK(wait_until(has_events, &w, 5000));
	snprintf(first, sizeof(first), "%s", fl.seen.new_epoch);
	CHECK_STR(first, "aaaa");

	fake_kill(&f);
	CHECK(fake_start(&f, "--epoch bbbb"));
	/* its first event has seq 1 again and must not be skipped as old */
	CHECK(publish(&f, "acquire", "ike"));
	w.n = 3;
	CHECK(wait_until(has_events, &w, 10000));
	follower_stop(&fl);
	fake_stop(&f);
	CHECK_INT(fl.seen.epochs, 2);
	CHECK_STR(fl.seen.old_epoch, "aaaa");
	CHECK_STR(fl.seen.new_epoch, "bbbb");
	CHECK_INT(fl.seen.seqs[2], 1);
	CHECK_STR(fl.seen.types[2], "acquire");
	CHECK(fl.seen.broken >= 1);
}

/* a stream that goes quiet (no keepalive) is given up after idle_ms and
 * opened again */
static void test_idle_reconnect(void)
{
	follower_t fl = {};
	want_t w = { .seen = &fl.seen, .n = 3 };
	fake_t f;

	fake_init(&f, "ev-idle");
	CHECK(fake_start(&f, "--keepalive 30"));
	CHECK(follower_start(&fl, &f, false, 300));
	CHECK(wait_until(has_connected, &w, 5000));
	follower_stop(&fl);
	fake_stop(&f);
	CHECK(fl.seen.broken >= 2);
	CHECK_INT(fl.seen.epochs, 1);
}

/* keepalives hold a quiet stream open */
static void test_keepalive_holds(void)
{
	follower_t fl = {};
	want_t w = { .seen = &fl.seen, .n = 1 };
	fake_t f;

	fake_init(&f, "ev-keepalive");
	CHECK(fake_start(&f, "--keepalive 0.2"));
	CHECK(follower_start(&fl, &f, false, 1000));
	CHECK(wait_until(has_connected, &w, 5000));
	usleep(2500000);
	follower_stop(&fl);
	fake_stop(&f);
	CHECK_INT(fl.seen.connected, 1);
	CHECK_INT(fl.seen.broken, 0);
}

/* prepare holds the first connection back until the owner is ready, and
 * its seed skips what happened before */
static void test_prepare(void)
{
	follower_t fl = {};
	want_t w = { .seen = &fl.seen, .n = 1 };
	json_object *info;
	fake_t f;

	fake_init(&f, "ev-prepare");
	CHECK(fake_start(&f, NULL));
	CHECK(publish(&f, "acquire", "ike"));
	CHECK(publish(&f, "acquire", "ike"));
	info = fake_call(&f, "GET", "/v1/info", NULL, NULL);
	CHECK(info);
	snprintf(fl.seen.seed_epoch, sizeof(fl.seen.seed_epoch), "%s",
			 xj_str(info, "epoch"));
	json_object_put(info);
	fl.seen.seed_seq = 2;
	fl.seen.refuse = 2;
	CHECK(follower_start(&fl, &f, true, 5000));
	CHECK(wait_until(has_connected, &w, 5000));
	CHECK(publish(&f, "sa-hard-expired", "ike"));
	CHECK(wait_until(has_events, &w, 5000));
	usleep(300000);
	follower_stop(&fl);
	fake_stop(&f);
	CHECK_INT(fl.seen.prepared, 3);
	CHECK_INT(fl.seen.events, 1);
	CHECK_INT(fl.seen.seqs[0], 3);
	/* the seeded epoch was the daemon's: no epoch change reported */
	CHECK_INT(fl.seen.epochs, 0);
}

const test_t events_tests[] = {
	{ "events/resume-without-loss", test_resume },
	{ "events/resync-on-backlog-overflow", test_resync },
	{ "events/daemon-restart", test_daemon_restart },
	{ "events/idle-reconnect", test_idle_reconnect },
	{ "events/keepalive-holds", test_keepalive_holds },
	{ "events/prepare", test_prepare },
	{ NULL, NULL },
};
