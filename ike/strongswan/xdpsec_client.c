/* SPDX-License-Identifier: GPL-2.0-or-later */

#define _GNU_SOURCE /* memmem */

#include "xdpsec_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/** Status line and headers must fit in this. */
#define MAX_HEADER (16 * 1024)
/** One line of the event stream must fit in this. */
#define MAX_LINE (1024 * 1024)
/** Pause between connect attempts while the daemon restarts. */
#define CONNECT_RETRY_MS 50

enum {
	CH_SIZE = 0,
	CH_DATA,
	CH_DATA_END,
	CH_TRAILER,
};

typedef struct {
	int fd;
	/* raw bytes received and not yet consumed */
	char *raw;
	size_t raw_len;
	size_t raw_cap;
} conn_t;

struct xc_stream_t {
	conn_t conn;
	bool chunked;
	xc_chunked_t dec;
	/* decoded body bytes; the lines are taken from the front */
	char *buf;
	size_t len;
	size_t cap;
	/* bytes of buf handed out as the previous line */
	size_t consumed;
	bool eof;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	if (left <= 0)
	{
		return 0;
	}
	return left > 60 * 60 * 1000 ? 60 * 60 * 1000 : (int)left;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
	{
	}
}

xc_client_t *xc_client_create(const char *path, int timeout_ms,
							  int connect_wait_ms)
{
	xc_client_t *c = calloc(1, sizeof(*c));

	if (!c)
	{
		return NULL;
	}
	c->path = strdup(path);
	if (!c->path)
	{
		free(c);
		return NULL;
	}
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
	c->connect_wait_ms = connect_wait_ms > 0 ? connect_wait_ms : 0;
	return c;
}

void xc_client_destroy(xc_client_t *c)
{
	if (c)
	{
		free(c->path);
		free(c);
	}
}

void xc_response_free(xc_response_t *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
}

static const char *connect_hint(int e)
{
	switch (e)
	{
		case ENOENT:
		case ECONNREFUSED:
			return " (is the xdpsec daemon running?)";
		case EACCES:
		case EPERM:
			return " (charon's user may not open the socket: see the daemon's "
				   "socket_group)";
		default:
			return "";
	}
}

/** Wait for a non-blocking connect in progress. */
static int finish_connect(int fd, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int e = 0, n;

	do
	{
		n = poll(&p, 1, remaining_ms(deadline));
	}
	while (n < 0 && errno == EINTR);
	if (n == 0)
	{
		return ETIMEDOUT;
	}
	if (n < 0)
	{
		return errno;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
	{
		return errno;
	}
	return e;
}

static xc_status_t conn_open(xc_client_t *c, int64_t deadline, conn_t *conn,
							 char *err, size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int64_t give_up;
	int fd, e;

	memset(conn, 0, sizeof(*conn));
	conn->fd = -1;
	if (strlen(c->path) >= sizeof(addr.sun_path))
	{
		snprintf(err, errlen, "socket path %s is too long", c->path);
		return XC_CONNECT;
	}
	strcpy(addr.sun_path, c->path);
	give_up = now_ms() +
			  (__atomic_load_n(&c->down, __ATOMIC_RELAXED) ? 0 : c->connect_wait_ms);
	if (give_up > deadline)
	{
		give_up = deadline;
	}
	for (;;)
	{
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
		{
			snprintf(err, errlen, "socket: %s", strerror(errno));
			return XC_CONNECT;
		}
		if (connect(fd, (struct sockaddr*)&addr, sizeof(addr)) == 0)
		{
			__atomic_store_n(&c->down, 0, __ATOMIC_RELAXED);
			conn->fd = fd;
			return XC_OK;
		}
		e = errno;
		if (e == EINPROGRESS)
		{
			e = finish_connect(fd, deadline);
			if (e == 0)
			{
				__atomic_store_n(&c->down, 0, __ATOMIC_RELAXED);
				conn->fd = fd;
				return XC_OK;
			}
		}
		close(fd);
		/* absent, refused or a full backlog: the daemon is (re)starting or
		 * busy; nothing was sent, so trying again is safe */
		if ((e == ENOENT || e == ECONNREFUSED || e == EAGAIN) &&
			now_ms() + CONNECT_RETRY_MS < give_up)
		{
			sleep_ms(CONNECT_RETRY_MS);
			continue;
		}
		__atomic_store_n(&c->down, 1, __ATOMIC_RELAXED);
		if (e == ETIMEDOUT)
		{
			snprintf(err, errlen, "connect %s: timed out", c->path);
			return XC_TIMEOUT;
		}
		snprintf(err, errlen, "connect %s: %s%s", c->path, strerror(e),
				 connect_hint(e));
		return XC_CONNECT;
	}
}

static void conn_close(conn_t *conn)
{
	if (conn->fd >= 0)
	{
		close(conn->fd);
		conn->fd = -1;
	}
	free(conn->raw);
	conn->raw = NULL;
	conn->raw_len = conn->raw_cap = 0;
}

static xc_status_t conn_write(conn_t *conn, const char *buf, size_t len,
							  int64_t deadline, char *err, size_t errlen)
{
	struct pollfd p = { .fd = conn->fd, .events = POLLOUT };
	ssize_t n;
	int r;

	while (len > 0)
	{
		n = send(conn->fd, buf, len, MSG_NOSIGNAL);
		if (n > 0)
		{
			buf += n;
			len -= n;
			continue;
		}
		if (n < 0 && errno == EINTR)
		{
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		{
			r = poll(&p, 1, remaining_ms(deadline));
			if (r == 0)
			{
				snprintf(err, errlen, "timed out sending the request");
				return XC_TIMEOUT;
			}
			if (r < 0 && errno != EINTR)
			{
				snprintf(err, errlen, "poll: %s", strerror(errno));
				return XC_IO;
			}
			continue;
		}
		snprintf(err, errlen, "sending the request: %s",
				 n < 0 ? strerror(errno) : "connection closed");
		return XC_IO;
	}
	return XC_OK;
}

typedef enum {
	FILL_GOT,
	FILL_EOF,
	FILL_TIMEOUT,
	FILL_STOPPED,
	FILL_ERROR,
} fill_t;

/** Read more raw bytes, waiting until the deadline or stop_fd. */
static fill_t conn_fill(conn_t *conn, int64_t deadline, int stop_fd,
						size_t limit)
{
	struct pollfd p[2] = {
		{ .fd = conn->fd, .events = POLLIN },
		{ .fd = stop_fd, .events = POLLIN },
	};
	ssize_t n;
	int r;

	if (conn->raw_cap - conn->raw_len < 4096)
	{
		size_t cap = conn->raw_cap ? conn->raw_cap * 2 : 8192;
		char *raw;

		if (cap > limit + 8192)
		{
			cap = limit + 8192;
		}
		if (cap <= conn->raw_len)
		{
			errno = EFBIG;
			return FILL_ERROR;
		}
		raw = realloc(conn->raw, cap);
		if (!raw)
		{
			return FILL_ERROR;
		}
		conn->raw = raw;
		conn->raw_cap = cap;
	}
	for (;;)
	{
		n = read(conn->fd, conn->raw + conn->raw_len,
				 conn->raw_cap - conn->raw_len);
		if (n > 0)
		{
			conn->raw_len += n;
			return FILL_GOT;
		}
		if (n == 0)
		{
			return FILL_EOF;
		}
		if (errno == EINTR)
		{
			continue;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK)
		{
			return FILL_ERROR;
		}
		r = poll(p, stop_fd >= 0 ? 2 : 1, remaining_ms(deadline));
		if (r == 0)
		{
			return FILL_TIMEOUT;
		}
		if (r < 0)
		{
			if (errno == EINTR)
			{
				continue;
			}
			return FILL_ERROR;
		}
		if (stop_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
		{
			return FILL_STOPPED;
		}
	}
}

static xc_status_t fill_error(fill_t f, const char *what, char *err,
							  size_t errlen)
{
	switch (f)
	{
		case FILL_EOF:
			snprintf(err, errlen, "connection closed while reading %s "
					 "(daemon restarting?)", what);
			return XC_IO;
		case FILL_TIMEOUT:
			snprintf(err, errlen, "timed out reading %s", what);
			return XC_TIMEOUT;
		case FILL_STOPPED:
			snprintf(err, errlen, "stopped");
			return XC_TIMEOUT;
		default:
			snprintf(err, errlen, "reading %s: %s", what,
					 errno == EFBIG ? "too large" : strerror(errno));
			return errno == EFBIG ? XC_PROTOCOL : XC_IO;
	}
}

static void consume_raw(conn_t *conn, size_t n)
{
	memmove(conn->raw, conn->raw + n, conn->raw_len - n);
	conn->raw_len -= n;
}

/** Find the value of header name in the header block, or NULL. */
static const char *find_header(const char *hdrs, const char *name,
							   size_t *vlen)
{
	size_t nlen = strlen(name);
	const char *line = hdrs, *end, *v;

	while ((end = strstr(line, "\r\n")) && end != line)
	{
		if ((size_t)(end - line) > nlen && line[nlen] == ':' &&
			strncasecmp(line, name, nlen) == 0)
		{
			v = line + nlen + 1;
			while (v < end && (*v == ' ' || *v == '\t'))
			{
				v++;
			}
			*vlen = end - v;
			while (*vlen > 0 && (v[*vlen - 1] == ' ' || v[*vlen - 1] == '\t'))
			{
				(*vlen)--;
			}
			return v;
		}
		line = end + 2;
	}
	return NULL;
}

typedef struct {
	int status;
	char epoch[XDPSEC_EPOCH_LEN + 1];
	bool chunked;
	bool has_length;
	uint64_t length;
} head_t;

/** Read and parse the status line and headers, leaving the body in raw. */
static xc_status_t read_head(conn_t *conn, int64_t deadline, int stop_fd,
							 head_t *head, char *err, size_t errlen)
{
	char *end = NULL, *hdrs, *p;
	const char *v;
	size_t vlen, hlen;
	fill_t f;

	memset(head, 0, sizeof(*head));
	for (;;)
	{
		if (conn->raw_len >= 4)
		{
			end = memmem(conn->raw, conn->raw_len, "\r\n\r\n", 4);
			if (end)
			{
				break;
			}
		}
		if (conn->raw_len > MAX_HEADER)
		{
			snprintf(err, errlen, "response header larger than %d bytes",
					 MAX_HEADER);
			return XC_PROTOCOL;
		}
		f = conn_fill(conn, deadline, stop_fd, MAX_HEADER);
		if (f != FILL_GOT)
		{
			return fill_error(f, "the response header", err, errlen);
		}
	}
	hlen = end - conn->raw + 4;
	hdrs = malloc(hlen + 1);
	if (!hdrs)
	{
		snprintf(err, errlen, "out of memory");
		return XC_PROTOCOL;
	}
	memcpy(hdrs, conn->raw, hlen);
	hdrs[hlen] = '\0';
	consume_raw(conn, hlen);

	if (strncmp(hdrs, "HTTP/1.", 7) != 0 || !hdrs[7] || hdrs[8] != ' ' ||
		sscanf(hdrs + 9, "%3d", &head->status) != 1 || head->status < 100 ||
		head->status > 599)
	{
		snprintf(err, errlen, "not an HTTP response: %.40s", hdrs);
		free(hdrs);
		return XC_PROTOCOL;
	}
	p = strstr(hdrs, "\r\n") + 2;
	v = find_header(p, "Transfer-Encoding", &vlen);
	if (v)
	{
		if (vlen == 7 && strncasecmp(v, "chunked", 7) == 0)
		{
			head->chunked = true;
		}
		else
		{
			snprintf(err, errlen, "unsupported transfer coding %.*s",
					 (int)(vlen > 40 ? 40 : vlen), v);
			free(hdrs);
			return XC_PROTOCOL;
		}
	}
	v = find_header(p, "Xdpsec-Epoch", &vlen);
	if (v && vlen <= XDPSEC_EPOCH_LEN)
	{
		memcpy(head->epoch, v, vlen);
		head->epoch[vlen] = '\0';
	}
	v = find_header(p, "Content-Length", &vlen);
	if (v && !head->chunked)
	{
		char num[24];
		char *e;

		if (vlen == 0 || vlen >= sizeof(num))
		{
			snprintf(err, errlen, "bad Content-Length");
			free(hdrs);
			return XC_PROTOCOL;
		}
		memcpy(num, v, vlen);
		num[vlen] = '\0';
		errno = 0;
		head->length = strtoull(num, &e, 10);
		if (errno || *e || num[0] == '-')
		{
			snprintf(err, errlen, "bad Content-Length %s", num);
			free(hdrs);
			return XC_PROTOCOL;
		}
		head->has_length = true;
	}
	free(hdrs);
	return XC_OK;
}

int xc_chunked_decode(xc_chunked_t *d, const char *in, size_t *in_len,
					  char *out, size_t *out_len, size_t out_cap)
{
	size_t pos = 0, avail = *in_len, n;
	const char *nl;

	while (!d->done && pos < avail)
	{
		switch (d->state)
		{
			case CH_SIZE:
			{
				uint64_t size = 0;
				size_t i, digits = 0;

				nl = memchr(in + pos, '\n', avail - pos);
				if (!nl)
				{
					if (avail - pos > 1024)
					{
						return -1;
					}
					goto out;
				}
				for (i = pos; in + i < nl; i++)
				{
					char ch = in[i];
					int v;

					if (ch >= '0' && ch <= '9')
					{
						v = ch - '0';
					}
					else if (ch >= 'a' && ch <= 'f')
					{
						v = ch - 'a' + 10;
					}
					else if (ch >= 'A' && ch <= 'F')
					{
						v = ch - 'A' + 10;
					}
					else
					{
						break;
					}
					if (++digits > 10)
					{
						return -1;
					}
					size = size * 16 + v;
				}
				if (digits == 0)
				{
					return -1;
				}
				/* the rest of the line is an extension (";name=value"),
				 * after optional white space */
				while (in + i < nl && (in[i] == ' ' || in[i] == '\t'))
				{
					i++;
				}
				if (in + i < nl && in[i] != ';' && in[i] != '\r')
				{
					return -1;
				}
				pos = nl - in + 1;
				if (size == 0)
				{
					d->state = CH_TRAILER;
				}
				else
				{
					d->remaining = size;
					d->state = CH_DATA;
				}
				break;
			}
			case CH_DATA:
				n = avail - pos;
				if (n > d->remaining)
				{
					n = d->remaining;
				}
				if (n > out_cap - *out_len)
				{
					n = out_cap - *out_len;
				}
				if (n == 0)
				{
					goto out;
				}
				memcpy(out + *out_len, in + pos, n);
				*out_len += n;
				pos += n;
				d->remaining -= n;
				if (d->remaining == 0)
				{
					d->state = CH_DATA_END;
				}
				break;
			case CH_DATA_END:
				if (in[pos] == '\r')
				{
					if (avail - pos < 2)
					{
						goto out;
					}
					pos++;
				}
				if (in[pos] != '\n')
				{
					return -1;
				}
				pos++;
				d->state = CH_SIZE;
				break;
			case CH_TRAILER:
				nl = memchr(in + pos, '\n', avail - pos);
				if (!nl)
				{
					if (avail - pos > 1024)
					{
						return -1;
					}
					goto out;
				}
				/* an empty line ends the trailer section */
				if (nl == in + pos || (nl == in + pos + 1 && in[pos] == '\r'))
				{
					d->done = true;
				}
				pos = nl - in + 1;
				break;
			default:
				return -1;
		}
	}
out:
	*in_len = pos;
	return 0;
}

/** Read the whole body of a response whose head was read. */
static xc_status_t read_body(conn_t *conn, head_t *head, int64_t deadline,
							 xc_response_t *resp, char *err, size_t errlen)
{
	xc_chunked_t dec = {};
	char *body = NULL;
	size_t len = 0, cap = 0, used;
	fill_t f;

	if (head->has_length && head->length > XDPSEC_MAX_BODY)
	{
		snprintf(err, errlen, "response body of %llu bytes is too large",
				 (unsigned long long)head->length);
		return XC_PROTOCOL;
	}
	for (;;)
	{
		if (head->chunked)
		{
			if (cap - len < conn->raw_len + 1)
			{
				size_t ncap = len + conn->raw_len + 4096;
				char *nb;

				if (ncap > XDPSEC_MAX_BODY + 1)
				{
					ncap = XDPSEC_MAX_BODY + 1;
				}
				nb = realloc(body, ncap);
				if (!nb)
				{
					free(body);
					snprintf(err, errlen, "out of memory");
					return XC_PROTOCOL;
				}
				body = nb;
				cap = ncap;
			}
			used = conn->raw_len;
			if (xc_chunked_decode(&dec, conn->raw, &used, body, &len,
								  cap - 1) < 0)
			{
				free(body);
				snprintf(err, errlen, "malformed chunked body");
				return XC_PROTOCOL;
			}
			consume_raw(conn, used);
			if (dec.done)
			{
				break;
			}
			if (len >= XDPSEC_MAX_BODY)
			{
				free(body);
				snprintf(err, errlen, "response body too large");
				return XC_PROTOCOL;
			}
		}
		else if (head->has_length && conn->raw_len >= head->length)
		{
			break;
		}
		else if (conn->raw_len > XDPSEC_MAX_BODY)
		{
			snprintf(err, errlen, "response body too large");
			return XC_PROTOCOL;
		}
		f = conn_fill(conn, deadline, -1, XDPSEC_MAX_BODY);
		if (f == FILL_EOF && !head->chunked && !head->has_length)
		{
			break;
		}
		if (f != FILL_GOT)
		{
			free(body);
			return fill_error(f, "the response body", err, errlen);
		}
	}
	if (!head->chunked)
	{
		len = head->has_length ? head->length : conn->raw_len;
		body = malloc(len + 1);
		if (!body)
		{
			snprintf(err, errlen, "out of memory");
			return XC_PROTOCOL;
		}
		memcpy(body, conn->raw, len);
	}
	body[len] = '\0';
	resp->body = body;
	resp->len = len;
	return XC_OK;
}

/** Write the request line, headers and body. */
static xc_status_t send_request(conn_t *conn, const char *method,
								const char *target, const char *body,
								size_t body_len, int64_t deadline, char *err,
								size_t errlen)
{
	char head[1024];
	int n;
	xc_status_t st;

	if (body)
	{
		n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: xdpsec\r\n"
					 "User-Agent: strongswan-kernel-xdpsec\r\n"
					 "Connection: close\r\nContent-Type: application/json\r\n"
					 "Content-Length: %zu\r\n\r\n", method, target, body_len);
	}
	else
	{
		n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: xdpsec\r\n"
					 "User-Agent: strongswan-kernel-xdpsec\r\n"
					 "Connection: close\r\n%s\r\n", method, target,
					 strcmp(method, "GET") ? "Content-Length: 0\r\n" : "");
	}
	if (n < 0 || (size_t)n >= sizeof(head))
	{
		snprintf(err, errlen, "request target too long");
		return XC_PROTOCOL;
	}
	st = conn_write(conn, head, n, deadline, err, errlen);
	if (st == XC_OK && body && body_len)
	{
		st = conn_write(conn, body, body_len, deadline, err, errlen);
	}
	return st;
}

xc_status_t xc_request(xc_client_t *c, const char *method, const char *target,
					   const char *body, size_t body_len, xc_response_t *resp,
					   char *err, size_t errlen)
{
	int64_t deadline = now_ms() + c->timeout_ms;
	conn_t conn;
	head_t head;
	xc_status_t st;

	memset(resp, 0, sizeof(*resp));
	st = conn_open(c, deadline, &conn, err, errlen);
	if (st != XC_OK)
	{
		return st;
	}
	st = send_request(&conn, method, target, body, body_len, deadline, err,
					  errlen);
	if (st == XC_OK)
	{
		st = read_head(&conn, deadline, -1, &head, err, errlen);
	}
	if (st == XC_OK)
	{
		resp->status = head.status;
		memcpy(resp->epoch, head.epoch, sizeof(resp->epoch));
		st = read_body(&conn, &head, deadline, resp, err, errlen);
	}
	if (st == XC_TIMEOUT)
	{
		/* say how long we waited: a slow daemon is told apart from a dead one */
		size_t l = strlen(err);

		snprintf(err + l, errlen - l, " (after %d ms)", c->timeout_ms);
	}
	conn_close(&conn);
	return st;
}

xc_status_t xc_stream_open(xc_client_t *c, const char *target,
						   xc_stream_t **stream, int *status, char **err_body,
						   char *err, size_t errlen)
{
	int64_t deadline = now_ms() + c->timeout_ms;
	xc_stream_t *s;
	head_t head;
	xc_status_t st;

	*stream = NULL;
	*err_body = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
	{
		snprintf(err, errlen, "out of memory");
		return XC_PROTOCOL;
	}
	st = conn_open(c, deadline, &s->conn, err, errlen);
	if (st == XC_OK)
	{
		st = send_request(&s->conn, "GET", target, NULL, 0, deadline, err,
						  errlen);
	}
	if (st == XC_OK)
	{
		st = read_head(&s->conn, deadline, -1, &head, err, errlen);
	}
	if (st != XC_OK)
	{
		xc_stream_close(s);
		return st;
	}
	*status = head.status;
	if (head.status != 200)
	{
		xc_response_t resp;

		if (read_body(&s->conn, &head, deadline, &resp, err, errlen) == XC_OK)
		{
			*err_body = resp.body;
		}
		xc_stream_close(s);
		return XC_OK;
	}
	s->chunked = head.chunked;
	*stream = s;
	return XC_OK;
}

xc_status_t xc_stream_readline(xc_stream_t *s, int timeout_ms, int stop_fd,
							   char **line, char *err, size_t errlen)
{
	int64_t deadline = now_ms() + timeout_ms;
	char *nl;
	size_t used;
	fill_t f;

	if (s->consumed)
	{
		memmove(s->buf, s->buf + s->consumed, s->len - s->consumed);
		s->len -= s->consumed;
		s->consumed = 0;
	}
	for (;;)
	{
		nl = s->len ? memchr(s->buf, '\n', s->len) : NULL;
		if (nl)
		{
			*nl = '\0';
			if (nl > s->buf && nl[-1] == '\r')
			{
				nl[-1] = '\0';
			}
			*line = s->buf;
			s->consumed = nl - s->buf + 1;
			return XC_OK;
		}
		if (s->len >= MAX_LINE)
		{
			snprintf(err, errlen, "event line longer than %d bytes", MAX_LINE);
			return XC_PROTOCOL;
		}
		if (s->cap - s->len < 4096 + 1)
		{
			size_t cap = s->cap ? s->cap * 2 : 16384;
			char *b;

			if (cap > MAX_LINE + 1)
			{
				cap = MAX_LINE + 1;
			}
			b = realloc(s->buf, cap);
			if (!b)
			{
				snprintf(err, errlen, "out of memory");
				return XC_PROTOCOL;
			}
			s->buf = b;
			s->cap = cap;
		}
		if (s->conn.raw_len)
		{
			if (s->chunked)
			{
				used = s->conn.raw_len;
				if (xc_chunked_decode(&s->dec, s->conn.raw, &used, s->buf,
									  &s->len, s->cap - 1) < 0)
				{
					snprintf(err, errlen, "malformed chunked stream");
					return XC_PROTOCOL;
				}
				consume_raw(&s->conn, used);
				if (s->dec.done)
				{
					s->eof = true;
				}
			}
			else
			{
				used = s->conn.raw_len;
				if (used > s->cap - 1 - s->len)
				{
					used = s->cap - 1 - s->len;
				}
				memcpy(s->buf + s->len, s->conn.raw, used);
				s->len += used;
				consume_raw(&s->conn, used);
			}
			continue;
		}
		if (s->eof)
		{
			snprintf(err, errlen, "end of stream");
			return XC_IO;
		}
		f = conn_fill(&s->conn, deadline, stop_fd, MAX_LINE);
		if (f == FILL_EOF)
		{
			s->eof = true;
			snprintf(err, errlen, "end of stream");
			return XC_IO;
		}
		if (f != FILL_GOT)
		{
			return fill_error(f, "the event stream", err, errlen);
		}
	}
}

void xc_stream_close(xc_stream_t *s)
{
	if (s)
	{
		conn_close(&s->conn);
		free(s->buf);
		free(s);
	}
}
