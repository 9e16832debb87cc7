/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * JSON for the xdpsec API: a small writer for requests (its buffer holds key
 * material, so it is wiped when freed) and helpers over json-c for answers.
 */

#ifndef XDPSEC_JSON_H_
#define XDPSEC_JSON_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <json-c/json.h>

#define JW_MAX_DEPTH 16

typedef struct {
	char *buf;
	size_t len;
	size_t cap;
	int depth;
	/* whether the object/array at each depth already has a member */
	bool more[JW_MAX_DEPTH];
	/* set on allocation failure or misuse; the result is then NULL */
	bool failed;
} jw_t;

void jw_init(jw_t *w);

/** Start an object; key is NULL at the top level and inside arrays. */
void jw_object(jw_t *w, const char *key);
void jw_object_end(jw_t *w);
void jw_array(jw_t *w, const char *key);
void jw_array_end(jw_t *w);
void jw_string(jw_t *w, const char *key, const char *value);
void jw_uint(jw_t *w, const char *key, uint64_t value);
void jw_bool(jw_t *w, const char *key, bool value);
void jw_null(jw_t *w, const char *key);
/** Bytes as ip xfrm writes keys: "0x" and lower-case hex. */
void jw_hex(jw_t *w, const char *key, const uint8_t *data, size_t len);

/**
 * The document, NUL-terminated; NULL if anything failed or an object is
 * still open. Stays owned by w.
 */
const char *jw_result(jw_t *w, size_t *len);

/** Overwrite and free the buffer. */
void jw_wipe(jw_t *w);

/**
 * Parse a JSON document; NULL with a reason in err on failure.
 */
json_object *xj_parse(const char *text, size_t len, char *err, size_t errlen);

/** A string member, or NULL if absent or not a string. */
const char *xj_str(json_object *obj, const char *key);

/** An unsigned integer member; false if absent or not a non-negative integer. */
bool xj_uint(json_object *obj, const char *key, uint64_t *value);

/** A member of the given type, or NULL. */
json_object *xj_member(json_object *obj, const char *key, json_type type);

/**
 * Parse an RFC 3339 time as Go's encoding/json writes time.Time
 * ("2026-12-03T14:34:00.123456789Z" or with "+01:00"); sub-second digits are
 * dropped. False if malformed.
 */
bool xj_time(const char *s, time_t *t);

/**
 * Describe an API error answer: "<kind>: <error>" from the JSON error body,
 * else the first line of the body, into buf.
 */
void xj_error_text(int status, const char *body, char *buf, size_t buflen);

/** The "kind" of an API error body, or "" if it has none. */
void xj_error_kind(const char *body, char *kind, size_t kindlen);

#endif /** XDPSEC_JSON_H_ */
