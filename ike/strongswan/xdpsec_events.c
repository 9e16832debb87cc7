/* SPDX-License-Identifier: GPL-2.0-or-later */

#define _GNU_SOURCE /* pipe2 */

#include "xdpsec_events.h"
#include "xdpsec_json.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 100

struct xdpsec_events_t {
	xc_client_t *client;
	char *filter;
	xdpsec_events_cb_t cb;
	void *ctx;
	int idle_ms;
	int backoff_max_ms;
	/* the daemon's epoch and the last sequence number handled in it */
	char *epoch;
	uint64_t since;
	/* written to stop the thread */
	int stop[2];
};

xdpsec_events_t *xdpsec_events_create(xc_client_t *client, const char *filter,
									  const xdpsec_events_cb_t *cb, void *ctx,
									  int idle_ms, int backoff_max_ms)
{
	xdpsec_events_t *ev = calloc(1, sizeof(*ev));

	if (!ev)
	{
		return NULL;
	}
	if (pipe2(ev->stop, O_CLOEXEC | O_NONBLOCK) < 0)
	{
		free(ev);
		return NULL;
	}
	ev->client = client;
	ev->filter = strdup(filter ? filter : "");
	ev->cb = *cb;
	ev->ctx = ctx;
	ev->idle_ms = idle_ms;
	ev->backoff_max_ms = backoff_max_ms > BACKOFF_MIN_MS ? backoff_max_ms
														 : BACKOFF_MIN_MS;
	return ev;
}

void xdpsec_events_seed(xdpsec_events_t *ev, const char *epoch, uint64_t seq)
{
	free(ev->epoch);
	ev->epoch = epoch ? strdup(epoch) : NULL;
	ev->since = seq;
}

static void report(xdpsec_events_t *ev, const char *err)
{
	if (ev->cb.status)
	{
		ev->cb.status(ev->ctx, err);
	}
}

/** Sleep ms unless stopped; false when stopped. */
static bool pause_ms(xdpsec_events_t *ev, int ms)
{
	struct pollfd p = { .fd = ev->stop[0], .events = POLLIN };

	return poll(&p, 1, ms) == 0;
}

static bool stopped(xdpsec_events_t *ev)
{
	return !pause_ms(ev, 0);
}

/** Handle one line; false to drop the connection. */
static bool handle_line(xdpsec_events_t *ev, const char *line, bool *started)
{
	char err[XDPSEC_ERRLEN];
	json_object *obj;
	const char *type, *epoch;
	uint64_t seq = 0;

	if (!*line)
	{
		return true;
	}
	obj = xj_parse(line, strlen(line), err, sizeof(err));
	type = xj_str(obj, "type");
	if (!type)
	{
		char msg[XDPSEC_ERRLEN + 32];

		snprintf(msg, sizeof(msg), "bad event line: %s",
				 obj ? "no type" : err);
		report(ev, msg);
		json_object_put(obj);
		return false;
	}
	if (!*started)
	{
		/* the daemon says first who it is and where it stands */
		epoch = xj_str(obj, "epoch");
		if (strcmp(type, "stream-start") != 0 || !epoch)
		{
			report(ev, "event stream did not begin with stream-start");
			json_object_put(obj);
			return false;
		}
		if (!ev->epoch || strcmp(ev->epoch, epoch) != 0)
		{
			char *old = ev->epoch;

			ev->epoch = strdup(epoch);
			/* the daemon ignored our since (another epoch): it streams its
			 * backlog from the oldest event, which we take */
			ev->since = 0;
			if (ev->cb.epoch)
			{
				ev->cb.epoch(ev->ctx, old, epoch);
			}
			free(old);
		}
		*started = true;
		report(ev, NULL);
		json_object_put(obj);
		return true;
	}
	if (strcmp(type, "keepalive") == 0)
	{
		json_object_put(obj);
		return true;
	}
	if (strcmp(type, "resync") == 0)
	{
		if (ev->cb.resync)
		{
			ev->cb.resync(ev->ctx, xj_str(obj, "reason") ?: "");
		}
		json_object_put(obj);
		return true;
	}
	if (!xj_uint(obj, "seq", &seq))
	{
		report(ev, "event without seq");
		json_object_put(obj);
		return false;
	}
	/* a replay overlapping what we had is not delivered twice */
	if (seq > ev->since)
	{
		ev->since = seq;
		if (ev->cb.event)
		{
			ev->cb.event(ev->ctx, obj);
		}
	}
	json_object_put(obj);
	return true;
}

/** One connection: read until it breaks or we are stopped; true if it started. */
static bool follow(xdpsec_events_t *ev)
{
	char target[512], err[XDPSEC_ERRLEN], msg[XDPSEC_ERRLEN * 2];
	char *err_body = NULL, *line;
	xc_stream_t *s;
	xc_status_t st;
	bool started = false;
	int status = 0;

	if (!ev->epoch && ev->cb.prepare)
	{
		char *epoch = NULL;
		uint64_t seq = 0;

		if (!ev->cb.prepare(ev->ctx, &epoch, &seq, err, sizeof(err)))
		{
			report(ev, err);
			return false;
		}
		ev->epoch = epoch;
		ev->since = seq;
	}
	if (ev->epoch)
	{
		snprintf(target, sizeof(target), "/v1/events?%s%ssince=%llu&epoch=%s",
				 ev->filter, *ev->filter ? "&" : "",
				 (unsigned long long)ev->since, ev->epoch);
	}
	else
	{
		snprintf(target, sizeof(target), "/v1/events?%s%ssince=0", ev->filter,
				 *ev->filter ? "&" : "");
	}
	st = xc_stream_open(ev->client, target, &s, &status, &err_body, err,
						sizeof(err));
	if (st != XC_OK)
	{
		report(ev, err);
		return false;
	}
	if (status != 200)
	{
		char text[XDPSEC_ERRLEN];

		xj_error_text(status, err_body, text, sizeof(text));
		snprintf(msg, sizeof(msg), "GET /v1/events: %s", text);
		report(ev, msg);
		free(err_body);
		return false;
	}
	for (;;)
	{
		st = xc_stream_readline(s, ev->idle_ms, ev->stop[0], &line, err,
								sizeof(err));
		if (st != XC_OK)
		{
			if (!stopped(ev))
			{
				snprintf(msg, sizeof(msg), "event stream: %s", err);
				report(ev, msg);
			}
			break;
		}
		if (!handle_line(ev, line, &started))
		{
			break;
		}
	}
	xc_stream_close(s);
	return started;
}

void xdpsec_events_run(xdpsec_events_t *ev)
{
	int backoff = BACKOFF_MIN_MS;

	while (!stopped(ev))
	{
		if (follow(ev))
		{
			backoff = BACKOFF_MIN_MS;
		}
		if (!pause_ms(ev, backoff))
		{
			break;
		}
		backoff = backoff * 2 > ev->backoff_max_ms ? ev->backoff_max_ms
												   : backoff * 2;
	}
}

void xdpsec_events_stop(xdpsec_events_t *ev)
{
	ssize_t n;

	do
	{
		n = write(ev->stop[1], "x", 1);
	}
	while (n < 0 && errno == EINTR);
}

void xdpsec_events_destroy(xdpsec_events_t *ev)
{
	if (!ev)
	{
		return;
	}
	close(ev->stop[0]);
	close(ev->stop[1]);
	free(ev->filter);
	free(ev->epoch);
	free(ev);
}
