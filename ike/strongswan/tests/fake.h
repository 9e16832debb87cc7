/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Runs tests/fake_xdpsecd.py on a socket in the test directory and talks to
 * it: its API for checks, its /_fake/ endpoints for faults and events.
 */

#ifndef XDPSEC_FAKE_H_
#define XDPSEC_FAKE_H_

#include <stdbool.h>
#include <sys/types.h>

#include <json-c/json.h>

typedef struct {
	char path[256];
	pid_t pid;
} fake_t;

/** Socket path <tmpdir>/<name>.sock; the daemon is not started. */
void fake_init(fake_t *f, const char *name);

/** Start the daemon (extra: further arguments or NULL); false on failure. */
bool fake_start(fake_t *f, const char *extra);

/** Stop it cleanly (it removes its socket). */
void fake_stop(fake_t *f);

/** Kill it as a crash would: the stale socket file stays. */
void fake_kill(fake_t *f);

/**
 * A request; the parsed answer of a 2xx status or NULL (with *status, if
 * given, set either way).
 */
json_object *fake_call(fake_t *f, const char *method, const char *path,
					   const char *body, int *status);

/** POST body to path and expect 2xx. */
bool fake_post(fake_t *f, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/** Number of entries of the array member key of /_fake/state. */
int fake_count(fake_t *f, const char *key);

/** Wait until cond(ctx) holds or ms passed; true if it held. */
bool wait_until(bool (*cond)(void *ctx), void *ctx, int ms);

#endif /** XDPSEC_FAKE_H_ */
