/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A small HTTP/1.1 client for the xdpsec daemon's API on its unix socket.
 *
 * One connection per request ("Connection: close"): a daemon that restarts
 * between two calls costs nothing but a new connect, and no state can go stale.
 * Every call has a deadline; a daemon that is absent, refuses, restarts in the
 * middle of an answer or is too slow makes the call fail with a reason in err,
 * never hang. Only a failed connect is retried (for connect_wait_ms), because
 * only then is it certain that the daemon never saw the request.
 */

#ifndef XDPSEC_CLIENT_H_
#define XDPSEC_CLIENT_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Upper bound of a response body (a list of many SAs is the largest). */
#define XDPSEC_MAX_BODY (64 * 1024 * 1024)

/** Size of the error buffers the callers pass. */
#define XDPSEC_ERRLEN 256

typedef enum {
	/** an answer arrived (any HTTP status) */
	XC_OK = 0,
	/** the daemon could not be reached: nothing was sent */
	XC_CONNECT,
	/** the connection broke or the deadline passed after the request was sent */
	XC_IO,
	/** the deadline passed */
	XC_TIMEOUT,
	/** the answer was not HTTP we understand, or too large */
	XC_PROTOCOL,
} xc_status_t;

/** Longest epoch (Xdpsec-Epoch header) kept. */
#define XDPSEC_EPOCH_LEN 64

typedef struct {
	/** HTTP status code */
	int status;
	/** the daemon's Xdpsec-Epoch header ("" if it sent none) */
	char epoch[XDPSEC_EPOCH_LEN + 1];
	/** the body, NUL-terminated, malloc'ed (NULL if empty) */
	char *body;
	size_t len;
} xc_response_t;

typedef struct {
	char *path;
	int timeout_ms;
	int connect_wait_ms;
	/* the last connect failed: try once, without waiting, until one works
	 * (charon deleting a thousand SAs while the daemon is gone must not
	 * wait connect_wait for each) */
	int down;
} xc_client_t;

/**
 * Create a client for the socket at path.
 *
 * @param timeout_ms		deadline of one request, connect included
 * @param connect_wait_ms	how long to keep retrying connect while the socket
 *							is absent or refuses (the daemon restarting)
 */
xc_client_t *xc_client_create(const char *path, int timeout_ms,
							  int connect_wait_ms);

void xc_client_destroy(xc_client_t *c);

/**
 * Send one request and read the whole answer.
 *
 * @param method		"GET", "POST", ...
 * @param target		path and query, e.g. "/v1/sa/get"
 * @param body			request body (JSON) or NULL
 * @param resp			the answer on XC_OK; free with xc_response_free
 * @param err			filled with a reason when the result is not XC_OK
 */
xc_status_t xc_request(xc_client_t *c, const char *method, const char *target,
					   const char *body, size_t body_len, xc_response_t *resp,
					   char *err, size_t errlen);

void xc_response_free(xc_response_t *resp);

/**
 * A response whose body is read as it arrives (the event stream).
 */
typedef struct xc_stream_t xc_stream_t;

/**
 * Open a streaming GET; on XC_OK *status holds the HTTP status and, for a
 * non-200 status, *err_body the (bounded) body.
 */
xc_status_t xc_stream_open(xc_client_t *c, const char *target,
						   xc_stream_t **stream, int *status, char **err_body,
						   char *err, size_t errlen);

/**
 * Read the next line of the body (without its newline), waiting at most
 * timeout_ms, and also returning early when stop_fd becomes readable
 * (XC_TIMEOUT with err "stopped"). The line stays valid until the next call.
 * End of the stream is XC_IO with err "end of stream".
 */
xc_status_t xc_stream_readline(xc_stream_t *s, int timeout_ms, int stop_fd,
							   char **line, char *err, size_t errlen);

void xc_stream_close(xc_stream_t *s);

/**
 * Decoder of the chunked transfer coding (RFC 9112 §7.1), exported for tests.
 */
typedef struct {
	int state;
	uint64_t remaining;
	bool done;
} xc_chunked_t;

/**
 * Decode what can be decoded of in[0..*in_len) into out (appending at
 * *out_len, at most out_cap bytes); *in_len becomes the number of bytes
 * consumed. Returns -1 on malformed input, else 0.
 */
int xc_chunked_decode(xc_chunked_t *d, const char *in, size_t *in_len,
					  char *out, size_t *out_len, size_t out_cap);

#endif /** XDPSEC_CLIENT_H_ */
