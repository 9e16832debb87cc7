/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Follows the daemon's event stream (GET /v1/events, newline-delimited JSON,
 * docs/ike-api.md) in a thread of its own: resumes after a lost connection
 * with ?since=<last seq>&epoch=<epoch>, tells a daemon restart (a new epoch)
 * and lost events (a "resync" line) to its owner, and reconnects with a
 * bounded backoff for as long as it runs.
 */

#ifndef XDPSEC_EVENTS_H_
#define XDPSEC_EVENTS_H_

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "xdpsec_client.h"

typedef struct xdpsec_events_t xdpsec_events_t;

typedef struct {
	/**
	 * Called before connecting while no epoch is known: fill *epoch (a
	 * malloc'ed string) and *seq to start after that event instead of at
	 * the daemon's oldest one. Returning false (with err) waits and retries.
	 */
	bool (*prepare)(void *ctx, char **epoch, uint64_t *seq, char *err,
					size_t errlen);
	/** an event (its "seq" is greater than every one before) */
	void (*event)(void *ctx, json_object *ev);
	/**
	 * The first stream of a daemon (old_epoch NULL) or of a restarted one;
	 * called before any of its events.
	 */
	void (*epoch)(void *ctx, const char *old_epoch, const char *new_epoch);
	/** events were lost (the daemon's backlog overflowed): re-read state */
	void (*resync)(void *ctx, const char *reason);
	/** the stream is up (err NULL) or broke (err says why) */
	void (*status)(void *ctx, const char *err);
} xdpsec_events_cb_t;

/**
 * @param filter		query parameters added to every request ("owner=ike")
 * @param idle_ms		reconnect when no line arrived for this long (the
 *						daemon sends keepalives)
 * @param backoff_max_ms	upper bound of the pause between reconnects
 */
xdpsec_events_t *xdpsec_events_create(xc_client_t *client, const char *filter,
									  const xdpsec_events_cb_t *cb, void *ctx,
									  int idle_ms, int backoff_max_ms);

/**
 * Resume after (epoch, seq) instead of from the daemon's oldest event.
 * Call before start.
 */
void xdpsec_events_seed(xdpsec_events_t *ev, const char *epoch, uint64_t seq);

/**
 * Follow the stream until xdpsec_events_stop: run this in a thread of its
 * own (charon's plugin uses a strongSwan thread, the tests a pthread).
 */
void xdpsec_events_run(xdpsec_events_t *ev);

/** Make xdpsec_events_run return soon; safe from any thread. */
void xdpsec_events_stop(xdpsec_events_t *ev);

/** Free; xdpsec_events_run must have returned (or never run). */
void xdpsec_events_destroy(xdpsec_events_t *ev);

#endif /** XDPSEC_EVENTS_H_ */
