/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The HTTP client's error paths against a scripted server on a unix socket
 * in a temporary directory: absent, refusing, restarting, closing mid-answer,
 * too slow, answering errors; and the chunked decoder on every split.
 */

#define _GNU_SOURCE

#include "test.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../xdpsec_client.h"
#include "../xdpsec_json.h"

#define countof(a) (sizeof(a) / sizeof((a)[0]))

typedef enum {
	/* answer with resp */
	SRV_ANSWER,
	/* read the request and close without a word (a daemon dying) */
	SRV_CLOSE,
	/* send the first half of resp and close */
	SRV_HALF,
	/* send resp, then keep the connection open until told to stop */
	SRV_HOLD,
} srv_mode_t;

typedef struct {
	char path[200];
	int lfd;
	int stop[2];
	pthread_t thread;
	pthread_mutex_t lock;
	srv_mode_t mode;
	int delay_ms;
	const char *resp;
	size_t resp_len;
	/* the last request received */
	char request[16384];
	size_t request_len;
	int requests;
} srv_t;

static void srv_path(srv_t *s, const char *name)
{
	snprintf(s->path, sizeof(s->path), "%s/%s", test_tmpdir(), name);
	unlink(s->path);
}

/** Read a request (headers and Content-Length body). */
static void srv_read_request(srv_t *s, int fd)
{
	char buf[16384];
	size_t len = 0;
	ssize_t n;
	char *end, *cl;
	size_t want = 0;

	for (;;)
	{
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
		{
			break;
		}
		len += n;
		buf[len] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end)
		{
			cl = strcasestr(buf, "Content-Length: ");
			want = (end - buf) + 4 + (cl && cl < end ? strtoul(cl + 16, NULL, 10)
											 : 0);
			if (len >= want)
			{
				break;
			}
		}
	}
	pthread_mutex_lock(&s->lock);
	memcpy(s->request, buf, len);
	s->request[len] = '\0';
	s->request_len = len;
	s->requests++;
	pthread_mutex_unlock(&s->lock);
}

static bool srv_wait_stop(srv_t *s, int ms)
{
	struct pollfd p = { .fd = s->stop[0], .events = POLLIN };

	return poll(&p, 1, ms) > 0;
}

static void *srv_run(void *arg)
{
	srv_t *s = arg;
	struct pollfd p[2] = {
		{ .fd = s->lfd, .events = POLLIN },
		{ .fd = s->stop[0], .events = POLLIN },
	};
	int fd;

	for (;;)
	{
		if (poll(p, 2, -1) < 0 || (p[1].revents & POLLIN))
		{
			break;
		}
		fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
		{
			continue;
		}
		srv_read_request(s, fd);
		if (s->delay_ms && srv_wait_stop(s, s->delay_ms))
		{
			close(fd);
			break;
		}
		switch (s->mode)
		{
			case SRV_ANSWER:
				if (write(fd, s->resp, s->resp_len) < 0)
				{
					break;
				}
				break;
			case SRV_CLOSE:
				break;
			case SRV_HALF:
				if (write(fd, s->resp, s->resp_len / 2) < 0)
				{
					break;
				}
				break;
			case SRV_HOLD:
				if (write(fd, s->resp, s->resp_len) < 0)
				{
					break;
				}
				srv_wait_stop(s, -1);
				break;
		}
		close(fd);
	}
	return NULL;
}

static bool srv_start(srv_t *s, srv_mode_t mode, const char *resp)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	s->mode = mode;
	s->resp = resp;
	s->resp_len = resp ? strlen(resp) : 0;
	pthread_mutex_init(&s->lock, NULL);
	if (pipe(s->stop) < 0)
	{
		return false;
	}
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	strcpy(addr.sun_path, s->path);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr*)&addr, sizeof(addr)) < 0 ||
		listen(s->lfd, 8) < 0)
	{
		return false;
	}
	return pthread_create(&s->thread, NULL, srv_run, s) == 0;
}

static void srv_stop(srv_t *s)
{
	if (write(s->stop[1], "x", 1) < 0)
	{
		return;
	}
	pthread_join(s->thread, NULL);
	close(s->lfd);
	close(s->stop[0]);
	close(s->stop[1]);
	unlink(s->path);
	pthread_mutex_destroy(&s->lock);
}

#define JSON_OK "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" \
	"Xdpsec-Epoch: 5f3a9c\r\nContent-Length: 11\r\n\r\n{\"spi\":256}"

static void test_request_and_answer(void)
{
	char err[XDPSEC_ERRLEN];
	xc_response_t resp;
	xc_client_t *c;
	srv_t s = {};

	srv_path(&s, "answer.sock");
	CHECK(srv_start(&s, SRV_ANSWER, JSON_OK));
	c = xc_client_create(s.path, 1000, 0);
	CHECK_INT(xc_request(c, "POST", "/v1/spi", "{\"a\":1}", 7, &resp, err,
						 sizeof(err)), XC_OK);
	CHECK_INT(resp.status, 200);
	CHECK_STR(resp.body, "{\"spi\":256}");
	CHECK_INT(resp.len, 11);
	CHECK_STR(resp.epoch, "5f3a9c");
	xc_response_free(&resp);
	/* what the daemon got: one request, closed after the answer */
	CHECK_INT(s.requests, 1);
	CHECK(strncmp(s.request, "POST /v1/spi HTTP/1.1\r\n", 23) == 0);
	CHECK_CONTAINS(s.request, "\r\nConnection: close\r\n");
	CHECK_CONTAINS(s.request, "\r\nContent-Type: application/json\r\n");
	CHECK_CONTAINS(s.request, "\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
	/* a GET has no body and no Content-Length */
	CHECK_INT(xc_request(c, "GET", "/v1/info", NULL, 0, &resp, err,
						 sizeof(err)), XC_OK);
	xc_response_free(&resp);
	CHECK(strncmp(s.request, "GET /v1/info HTTP/1.1\r\n", 23) == 0);
	CHECK(!strstr(s.request, "Content-Length"));
	xc_client_destroy(c);
	srv_stop(&s);
}

static void test_absent(void)
{
	char err[XDPSEC_ERRLEN], path[256];
	xc_response_t resp;
	xc_client_t *c;
	int64_t t0, took;

	snprintf(path, sizeof(path), "%s/absent.sock", test_tmpdir());
	c = xc_client_create(path, 2000, 300);
	t0 = test_now_ms();
	CHECK_INT(xc_request(c, "GET", "/v1/info", NULL, 0, &resp, err,
						 sizeof(err)), XC_CONNECT);
	took = test_now_ms() - t0;
	CHECK_CONTAINS(err, "No such file or directory");
	CHECK_CONTAINS(err, "is the xdpsec daemon running?");
	CHECK_CONTAINS(err, path);
	/* it kept trying for connect_wait, not for the whole timeout */
	CHECK_MSG(took >= 250 && took < 1500, "took %lld ms", (long long)took);
	/* while the daemon stays away, calls fail at once (charon deleting
	 * many SAs at shutdown does not wait for each) */
	t0 = test_now_ms();
	CHECK_INT(xc_request(c, "GET", "/v1/info", NULL, 0, &resp, err,
						 sizeof(err)), XC_CONNECT);
	took = test_now_ms() - t0;
	CHECK_MSG(took < 100, "second call took %lld ms", (long long)took);
	xc_client_destroy(c);
}

static void test_refused(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char err[XDPSEC_ERRLEN];
	xc_response_t resp;
	xc_client_t *c;
	int fd;

	/* a stale socket file with no one listening, as a crashed daemon
	 * leaves it */
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/stale.sock",
			 test_tmpdir());
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr*)&addr, sizeof(addr)) == 0);
	close(fd);
	c = xc_client_create(addr.sun_path, 1000, 0);
	CHECK_INT(xc_request(c, "GET", "/v1/info", NULL, 0, &resp, err,
						 sizeof(err)), XC_CONNECT);
	CHECK_CONTAINS(err, "Connection refused");
	xc_client_destroy(c);
	unlink(addr.sun_path);
}

typedef struct {
	srv_t *srv;
	int after_ms;
} late_start_t;

static void *start_late(void *arg)
{
	late_start_t *l = arg;

	usleep(l->after_ms * 1000);
	srv_start(l->srv, SRV_ANSWER, JSON_OK);
	return NULL;
}

/* a daemon coming up while a call waits is reached within connect_wait */
static void test_daemon_starting(void)
{
	char err[XDPSEC_ERRLEN];
	xc_response_t resp;
	xc_client_t *c;
	srv_t s = {};
	late_start_t l = { .srv = &s, .after_ms = 300 };
	pthread_t t;
	int64_t t0, took;
	xc_status_t st;

	srv_path(&s, "late.sock");
	CHECK(pthread_create(&t, NULL, start_late, &l) == 0);
	c = xc_client_create(s.path, 3000, 2000);
	t0 = test_now_ms();
	st = xc_request(c, "GET", "/v1/info", NULL, 0, &resp, err, sizeof(err));
	took = test_now_ms() - t0;
	pthread_join(t, NULL);
	CHECK_MSG(st == XC_OK, "%s", err);
	CHECK_INT(resp.status, 200);
	CHECK_MSG(took >= 250 && took < 2000, "took %lld ms", (long long)took);
	xc_response_free(&resp);
	xc_client_destroy(c);
	srv_stop(&s);
}

/* the daemon reads the request and goes away: the call fails, and the next
 * call reaches the daemon that took its place */
static void test_daemon_restarting_mid_call(void)
{
	char err[XDPSEC_ERRLEN];
	xc_response_t resp;
	xc_client_t *c;
	srv_t s = {}, s2 = {};

	srv_path(&s, "restart.sock");
	CHECK(srv_start(&s, SRV_CLOSE, NULL));
	c = xc_client_create(s.path, 2000, 0);
	CHECK_INT(xc_request(c, "POST", "/v1/sa", "{}", 2, &resp, err, sizeof(err)),
			  XC_IO);
	CHECK_CONTAINS(err, "connection closed while reading the response header");
	CHECK_INT(s.requests, 1);
	srv_stop(&s);

	srv_path(&s2, "restart.sock");
	CHECK(srv_start(&s2, SRV_ANSWER, JSON_OK));
	CHECK_INT(xc_request(c, "POST", "/v1/sa", "{}", 2, &resp, err, sizeof(err)),
			  XC_OK);
	CHECK_INT(resp.status, 200);
	xc_response_free(&resp);
	xc_client_destroy(c);
	srv_stop(&s2);
}

static void test_closed_mid_body(void)
{
	char err[XDPSEC_ERRLEN];
	xc_response_t resp;
	xc_client_t *c;
	srv_t s = {};

	srv_path(&s, "half.sock");
	/* half of this is past the header but short of Content-Length */
	CHECK(srv_start(&s, SRV_HALF, "HTTP/1.1 200 OK\r\nContent-Length: 60\r\n"
					"\r\n{\"spi\":256,\"padding\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
					"\"}"));
	c = xc_client_create(s.path, 2000, 0);
	CHECK_INT(xc_request(c, "GET", "/v1/info", NULL, 0, &resp, err,
						 sizeof(err)), XC_IO);
	CHECK_CONTAINS(err, "connection closed while reading the response");
	xc_client_destroy(c);
	srv_stop(&s);
}

static void test_slow_daemon(void)
{
	char err[XDPSEC_ERRLEN];
	xc_response_t resp;
	xc_client_t *c;
	srv_t s = {};
	int64_t t0, took;

	srv_path(&s, "slow.sock");
	s.delay_ms = 3000;
	CHECK(srv_start(&s, SRV_ANSWER, JSON_OK));
	c = xc_client_create(s.path, 300, 0);
	t0 = test_now_ms();
	CHECK_INT(xc_request(c, "GET", "/v1/info", NULL, 0, &resp, err,
						 sizeof(err)), XC_TIMEOUT);
	took = test_now_ms() - t0;
	CHECK_CONTAINS(err, "timed out");
	CHECK_CONTAINS(err, "after 300 ms");
	CHECK_MSG(took >= 290 && took < 1500, "took %lld ms", (long long)took);
	xc_client_destroy(c);
	srv_stop(&s);
}

static void test_error_answer(void)
{
	char err[XDPSEC_ERRLEN], text[XDPSEC_ERRLEN], kind[32];
	xc_response_t resp;
	xc_client_t *c;
	srv_t s = {};

	srv_path(&s, "error.sock");
	CHECK(srv_start(&s, SRV_ANSWER, "HTTP/1.1 409 Conflict\r\n"
					"Content-Type: application/json\r\nContent-Length: 60\r\n"
					"\r\n{\"error\": \"add sa spi 0x00000100: exists\", "
					"\"kind\": \"exists\"}"));
	c = xc_client_create(s.path, 1000, 0);
	CHECK_INT(xc_request(c, "POST", "/v1/sa", "{}", 2, &resp, err, sizeof(err)),
			  XC_OK);
	CHECK_INT(resp.status, 409);
	xj_error_text(resp.status, resp.body, text, sizeof(text));
	CHECK_STR(text, "HTTP 409, exists: add sa spi 0x00000100: exists");
	xj_error_kind(resp.body, kind, sizeof(kind));
	CHECK_STR(kind, "exists");
	xc_response_free(&resp);
	xc_client_destroy(c);
	srv_stop(&s);
}

static void test_body_framings(void)
{
	const char *answers[] = {
		/* chunked, with an extension and a trailer */
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		"5;x=y\r\n{\"spi\r\n6\r\n\":256}\r\n0\r\nX-Trailer: 1\r\n\r\n",
		/* neither length nor chunked: until the connection closes */
		"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"spi\":256}",
		/* header names in any case, HTTP/1.0 */
		"HTTP/1.0 200 OK\r\ncontent-length: 11\r\n\r\n{\"spi\":256}",
	};
	char err[XDPSEC_ERRLEN];
	xc_response_t resp;
	xc_client_t *c;
	size_t i;

	for (i = 0; i < countof(answers); i++)
	{
		srv_t s = {};

		srv_path(&s, "framing.sock");
		CHECK(srv_start(&s, SRV_ANSWER, answers[i]));
		c = xc_client_create(s.path, 1000, 0);
		CHECK_MSG(xc_request(c, "GET", "/v1/info", NULL, 0, &resp, err,
							 sizeof(err)) == XC_OK, "answer %zu: %s", i, err);
		CHECK_STR(resp.body, "{\"spi\":256}");
		xc_response_free(&resp);
		xc_client_destroy(c);
		srv_stop(&s);
	}
}

static void test_not_http(void)
{
	const char *answers[] = {
		"SSH-2.0-OpenSSH\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n",
	};
	char err[XDPSEC_ERRLEN];
	xc_response_t resp;
	xc_client_t *c;
	size_t i;

	for (i = 0; i < countof(answers); i++)
	{
		srv_t s = {};

		srv_path(&s, "garbage.sock");
		CHECK(srv_start(&s, SRV_ANSWER, answers[i]));
		c = xc_client_create(s.path, 1000, 0);
		CHECK_MSG(xc_request(c, "GET", "/v1/info", NULL, 0, &resp, err,
							 sizeof(err)) == XC_PROTOCOL, "answer %zu accepted",
				  i);
		xc_client_destroy(c);
		srv_stop(&s);
	}
}

/* the event stream: lines across chunk boundaries, an idle deadline, and a
 * stop request that ends the wait at once */
static void test_stream(void)
{
	char err[XDPSEC_ERRLEN], *line, *body = NULL;
	xc_stream_t *st;
	xc_client_t *c;
	srv_t s = {};
	int status, stop[2];
	int64_t t0, took;

	srv_path(&s, "stream.sock");
	CHECK(srv_start(&s, SRV_HOLD, "HTTP/1.1 200 OK\r\n"
					"Content-Type: application/x-ndjson\r\n"
					"Transfer-Encoding: chunked\r\n\r\n"
					"8\r\n{\"a\":1}\n\r\n"
					"3\r\n{\"b\r\n"
					"6\r\n\":2}\n{\r\n"
					"7\r\n\"c\":3}\n\r\n"));
	c = xc_client_create(s.path, 1000, 0);
	CHECK_INT(xc_stream_open(c, "/v1/events?since=0", &st, &status, &body, err,
							 sizeof(err)), XC_OK);
	CHECK_INT(status, 200);
	CHECK(st != NULL);
	CHECK_INT(xc_stream_readline(st, 1000, -1, &line, err, sizeof(err)), XC_OK);
	CHECK_STR(line, "{\"a\":1}");
	CHECK_INT(xc_stream_readline(st, 1000, -1, &line, err, sizeof(err)), XC_OK);
	CHECK_STR(line, "{\"b\":2}");
	CHECK_INT(xc_stream_readline(st, 1000, -1, &line, err, sizeof(err)), XC_OK);
	CHECK_STR(line, "{\"c\":3}");

	t0 = test_now_ms();
	CHECK_INT(xc_stream_readline(st, 200, -1, &line, err, sizeof(err)),
			  XC_TIMEOUT);
	took = test_now_ms() - t0;
	CHECK_MSG(took >= 190 && took < 1000, "idle wait took %lld ms",
			  (long long)took);

	CHECK(pipe(stop) == 0);
	CHECK(write(stop[1], "x", 1) == 1);
	t0 = test_now_ms();
	CHECK_INT(xc_stream_readline(st, 5000, stop[0], &line, err, sizeof(err)),
			  XC_TIMEOUT);
	CHECK_STR(err, "stopped");
	CHECK(test_now_ms() - t0 < 1000);
	close(stop[0]);
	close(stop[1]);
	xc_stream_close(st);
	xc_client_destroy(c);
	srv_stop(&s);
}

static void test_stream_refused(void)
{
	char err[XDPSEC_ERRLEN], *body = NULL;
	xc_stream_t *st;
	xc_client_t *c;
	srv_t s = {};
	int status = 0;

	srv_path(&s, "stream404.sock");
	CHECK(srv_start(&s, SRV_ANSWER, "HTTP/1.1 404 Not Found\r\n"
					"Content-Type: text/plain\r\nContent-Length: 19\r\n\r\n"
					"404 page not found\n"));
	c = xc_client_create(s.path, 1000, 0);
	CHECK_INT(xc_stream_open(c, "/v1/events", &st, &status, &body, err,
							 sizeof(err)), XC_OK);
	CHECK_INT(status, 404);
	CHECK(st == NULL);
	CHECK_STR(body, "404 page not found\n");
	free(body);
	xc_client_destroy(c);
	srv_stop(&s);
}

/* every way of cutting a chunked body into reads decodes the same */
static void test_chunked_splits(void)
{
	const char *in = "4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks."
					 "\r\n0\r\nTrailer: x\r\n\r\n";
	const char *want = "Wikipedia in\r\n\r\nchunks.";
	size_t n = strlen(in), cut, cut2;

	for (cut = 0; cut <= n; cut++)
	{
		for (cut2 = cut; cut2 <= n; cut2 += 3)
		{
			xc_chunked_t d = {};
			char out[64], buf[128];
			size_t out_len = 0, have = 0, used, fed = 0;
			size_t cuts[] = { cut, cut2, n };
			int i;

			for (i = 0; i < 3; i++)
			{
				memcpy(buf + have, in + fed, cuts[i] - fed);
				have += cuts[i] - fed;
				fed = cuts[i];
				used = have;
				CHECK(xc_chunked_decode(&d, buf, &used, out, &out_len,
										sizeof(out)) == 0);
				memmove(buf, buf + used, have - used);
				have -= used;
			}
			CHECK_MSG(d.done, "cuts %zu/%zu: not done", cut, cut2);
			CHECK_MSG(out_len == strlen(want) && !memcmp(out, want, out_len),
					  "cuts %zu/%zu: decoded %.*s", cut, cut2, (int)out_len,
					  out);
		}
	}
}

static void test_chunked_malformed(void)
{
	const char *bad[] = {
		"g\r\n",
		"\r\n",
		"5\r\nhelloXX",
		"ffffffffffff\r\n",
		"5 junk\r\n",
	};
	size_t i;

	for (i = 0; i < countof(bad); i++)
	{
		xc_chunked_t d = {};
		char out[64];
		size_t out_len = 0, used = strlen(bad[i]);

		CHECK_MSG(xc_chunked_decode(&d, bad[i], &used, out, &out_len,
									sizeof(out)) < 0, "case %zu accepted", i);
	}
}

const test_t client_tests[] = {
	{ "client/request-and-answer", test_request_and_answer },
	{ "client/daemon-absent", test_absent },
	{ "client/connection-refused", test_refused },
	{ "client/daemon-starting", test_daemon_starting },
	{ "client/daemon-restarting-mid-call", test_daemon_restarting_mid_call },
	{ "client/closed-mid-body", test_closed_mid_body },
	{ "client/slow-daemon-timeout", test_slow_daemon },
	{ "client/error-answer", test_error_answer },
	{ "client/body-framings", test_body_framings },
	{ "client/not-http", test_not_http },
	{ "client/stream", test_stream },
	{ "client/stream-refused", test_stream_refused },
	{ "client/chunked-splits", test_chunked_splits },
	{ "client/chunked-malformed", test_chunked_malformed },
	{ NULL, NULL },
};
