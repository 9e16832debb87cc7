/* SPDX-License-Identifier: GPL-2.0-or-later */

#include "xdpsec_json.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/** Overwrite memory in a way the compiler may not drop. */
static void wipe(void *p, size_t n)
{
	volatile uint8_t *v = p;

	while (n--)
	{
		*v++ = 0;
	}
}

void jw_init(jw_t *w)
{
	memset(w, 0, sizeof(*w));
}

static void put(jw_t *w, const char *s, size_t n)
{
	if (w->failed)
	{
		return;
	}
	if (w->cap - w->len < n + 1)
	{
		size_t cap = w->cap ? w->cap : 512;
		char *buf;

		while (cap - w->len < n + 1)
		{
			cap *= 2;
		}
		/* not realloc: the old buffer may hold key bytes and is wiped */
		buf = malloc(cap);
		if (!buf)
		{
			w->failed = true;
			return;
		}
		if (w->buf)
		{
			memcpy(buf, w->buf, w->len);
			wipe(w->buf, w->cap);
			free(w->buf);
		}
		w->buf = buf;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void put_str(jw_t *w, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p;
	char esc[7];

	put(w, "\"", 1);
	for (p = (const unsigned char*)s; *p; p++)
	{
		switch (*p)
		{
			case '"':
				put(w, "\\\"", 2);
				break;
			case '\\':
				put(w, "\\\\", 2);
				break;
			case '\n':
				put(w, "\\n", 2);
				break;
			case '\r':
				put(w, "\\r", 2);
				break;
			case '\t':
				put(w, "\\t", 2);
				break;
			default:
				if (*p < 0x20)
				{
					memcpy(esc, "\\u00", 4);
					esc[4] = hex[*p >> 4];
					esc[5] = hex[*p & 15];
					put(w, esc, 6);
				}
				else
				{
					put(w, (const char*)p, 1);
				}
		}
	}
	put(w, "\"", 1);
}

/** Separator and key of the next member. */
static void member(jw_t *w, const char *key)
{
	if (w->depth > 0)
	{
		if (w->more[w->depth - 1])
		{
			put(w, ",", 1);
		}
		w->more[w->depth - 1] = true;
	}
	if (key)
	{
		put_str(w, key);
		put(w, ":", 1);
	}
}

static void begin(jw_t *w, const char *key, const char *c)
{
	member(w, key);
	if (w->depth >= JW_MAX_DEPTH)
	{
		w->failed = true;
		return;
	}
	put(w, c, 1);
	w->more[w->depth++] = false;
}

static void finish(jw_t *w, const char *c)
{
	if (w->depth <= 0)
	{
		w->failed = true;
		return;
	}
	w->depth--;
	put(w, c, 1);
}

void jw_object(jw_t *w, const char *key)
{
	begin(w, key, "{");
}

void jw_object_end(jw_t *w)
{
	finish(w, "}");
}

void jw_array(jw_t *w, const char *key)
{
	begin(w, key, "[");
}

void jw_array_end(jw_t *w)
{
	finish(w, "]");
}

void jw_string(jw_t *w, const char *key, const char *value)
{
	member(w, key);
	put_str(w, value);
}

void jw_uint(jw_t *w, const char *key, uint64_t value)
{
	char num[24];
	int n;

	member(w, key);
	n = snprintf(num, sizeof(num), "%llu", (unsigned long long)value);
	put(w, num, n);
}

void jw_bool(jw_t *w, const char *key, bool value)
{
	member(w, key);
	put(w, value ? "true" : "false", value ? 4 : 5);
}

void jw_null(jw_t *w, const char *key)
{
	member(w, key);
	put(w, "null", 4);
}

void jw_hex(jw_t *w, const char *key, const uint8_t *data, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char pair[2];
	size_t i;

	member(w, key);
	put(w, "\"0x", 3);
	for (i = 0; i < len; i++)
	{
		pair[0] = hex[data[i] >> 4];
		pair[1] = hex[data[i] & 15];
		put(w, pair, 2);
	}
	wipe(pair, sizeof(pair));
	put(w, "\"", 1);
}

const char *jw_result(jw_t *w, size_t *len)
{
	if (w->failed || w->depth != 0 || !w->buf)
	{
		return NULL;
	}
	if (len)
	{
		*len = w->len;
	}
	return w->buf;
}

void jw_wipe(jw_t *w)
{
	if (w->buf)
	{
		wipe(w->buf, w->cap);
		free(w->buf);
	}
	jw_init(w);
}

json_object *xj_parse(const char *text, size_t len, char *err, size_t errlen)
{
	json_tokener *tok;
	json_object *obj;
	enum json_tokener_error e;

	if (!text || !len)
	{
		snprintf(err, errlen, "empty answer");
		return NULL;
	}
	tok = json_tokener_new();
	if (!tok)
	{
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	obj = json_tokener_parse_ex(tok, text, (int)len);
	e = json_tokener_get_error(tok);
	if (!obj || e != json_tokener_success)
	{
		snprintf(err, errlen, "malformed JSON: %s",
				 e == json_tokener_continue ? "truncated"
											: json_tokener_error_desc(e));
		json_object_put(obj);
		obj = NULL;
	}
	else
	{
		/* nothing but white space may follow the document */
		size_t off = json_tokener_get_parse_end(tok);

		while (off < len && isspace((unsigned char)text[off]))
		{
			off++;
		}
		if (off < len)
		{
			snprintf(err, errlen, "malformed JSON: trailing data");
			json_object_put(obj);
			obj = NULL;
		}
	}
	json_tokener_free(tok);
	return obj;
}

json_object *xj_member(json_object *obj, const char *key, json_type type)
{
	json_object *v;

	if (!obj || !json_object_is_type(obj, json_type_object) ||
		!json_object_object_get_ex(obj, key, &v) ||
		!json_object_is_type(v, type))
	{
		return NULL;
	}
	return v;
}

const char *xj_str(json_object *obj, const char *key)
{
	json_object *v = xj_member(obj, key, json_type_string);

	return v ? json_object_get_string(v) : NULL;
}

bool xj_uint(json_object *obj, const char *key, uint64_t *value)
{
	json_object *v = xj_member(obj, key, json_type_int);

	if (!v)
	{
		return false;
	}
	if (json_object_get_int64(v) < 0)
	{
		return false;
	}
	*value = json_object_get_uint64(v);
	return true;
}

static bool digits(const char *s, int n, int *v)
{
	int i;

	*v = 0;
	for (i = 0; i < n; i++)
	{
		if (!isdigit((unsigned char)s[i]))
		{
			return false;
		}
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

bool xj_time(const char *s, time_t *t)
{
	struct tm tm = {};
	int year, mon, day, hour, min, sec, oh, om, off = 0;
	time_t v;

	if (!s || strlen(s) < 20 || !digits(s, 4, &year) || s[4] != '-' ||
		!digits(s + 5, 2, &mon) || s[7] != '-' || !digits(s + 8, 2, &day) ||
		(s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &hour) ||
		s[13] != ':' || !digits(s + 14, 2, &min) || s[16] != ':' ||
		!digits(s + 17, 2, &sec))
	{
		return false;
	}
	s += 19;
	if (*s == '.')
	{
		s++;
		if (!isdigit((unsigned char)*s))
		{
			return false;
		}
		while (isdigit((unsigned char)*s))
		{
			s++;
		}
	}
	if (*s == 'Z' || *s == 'z')
	{
		s++;
	}
	else if ((*s == '+' || *s == '-') && digits(s + 1, 2, &oh) &&
			 s[3] == ':' && digits(s + 4, 2, &om))
	{
		off = (oh * 3600 + om * 60) * (*s == '-' ? -1 : 1);
		s += 6;
	}
	else
	{
		return false;
	}
	if (*s || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 ||
		min > 59 || sec > 60)
	{
		return false;
	}
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	v = timegm(&tm);
	if (v == (time_t)-1 && year != 1969)
	{
		return false;
	}
	*t = v - off;
	return true;
}

void xj_error_kind(const char *body, char *kind, size_t kindlen)
{
	char err[64];
	json_object *obj;
	const char *k;

	kind[0] = '\0';
	if (!body)
	{
		return;
	}
	obj = xj_parse(body, strlen(body), err, sizeof(err));
	k = xj_str(obj, "kind");
	if (k)
	{
		snprintf(kind, kindlen, "%s", k);
	}
	json_object_put(obj);
}

void xj_error_text(int status, const char *body, char *buf, size_t buflen)
{
	char err[64];
	json_object *obj = NULL;
	const char *msg, *kind;
	size_t n;

	if (body && *body)
	{
		obj = xj_parse(body, strlen(body), err, sizeof(err));
	}
	msg = xj_str(obj, "error");
	kind = xj_str(obj, "kind");
	if (msg)
	{
		snprintf(buf, buflen, "HTTP %d, %s: %s", status, kind ? kind : "error",
				 msg);
	}
	else if (body && *body)
	{
		/* not our JSON: an endpoint the daemon does not have, or a proxy */
		n = strcspn(body, "\r\n");
		snprintf(buf, buflen, "HTTP %d: %.*s", status, (int)(n > 120 ? 120 : n),
				 body);
	}
	else
	{
		snprintf(buf, buflen, "HTTP %d", status);
	}
	json_object_put(obj);
}
