/* SPDX-License-Identifier: GPL-2.0-or-later */

#include "test.h"

#include <stdlib.h>

#include "../xdpsec_json.h"

static void test_writer_document(void)
{
	const uint8_t key[] = { 0x00, 0x01, 0xab, 0xff };
	const char *doc;
	jw_t w;

	jw_init(&w);
	jw_object(&w, NULL);
	jw_string(&w, "s", "a\"b\\c\n\t\x01");
	jw_uint(&w, "n", 18446744073709551615ULL);
	jw_bool(&w, "t", true);
	jw_bool(&w, "f", false);
	jw_null(&w, "z");
	jw_hex(&w, "key", key, sizeof(key));
	jw_hex(&w, "empty", key, 0);
	jw_object(&w, "o");
	jw_array(&w, "a");
	jw_uint(&w, NULL, 1);
	jw_object(&w, NULL);
	jw_object_end(&w);
	jw_array_end(&w);
	jw_object_end(&w);
	jw_object_end(&w);
	doc = jw_result(&w, NULL);
	CHECK_STR(doc, "{\"s\":\"a\\\"b\\\\c\\n\\t\\u0001\","
			  "\"n\":18446744073709551615,\"t\":true,\"f\":false,\"z\":null,"
			  "\"key\":\"0x0001abff\",\"empty\":\"0x\",\"o\":{\"a\":[1,{}]}}");
	jw_wipe(&w);
	CHECK(w.buf == NULL && w.len == 0);
}

static void test_writer_parses_back(void)
{
	char err[128];
	json_object *obj;
	uint64_t v;
	jw_t w;

	jw_init(&w);
	jw_object(&w, NULL);
	jw_string(&w, "name", "ü \"quoted\" \x7f");
	jw_uint(&w, "big", 4294967296ULL);
	jw_object_end(&w);
	obj = xj_parse(jw_result(&w, NULL), w.len, err, sizeof(err));
	CHECK_MSG(obj, "%s", err);
	CHECK_STR(xj_str(obj, "name"), "ü \"quoted\" \x7f");
	CHECK(xj_uint(obj, "big", &v) && v == 4294967296ULL);
	json_object_put(obj);
	jw_wipe(&w);
}

static void test_writer_misuse(void)
{
	jw_t w;
	int i;

	jw_init(&w);
	jw_object(&w, NULL);
	CHECK(jw_result(&w, NULL) == NULL);
	jw_wipe(&w);

	jw_init(&w);
	jw_object_end(&w);
	CHECK(jw_result(&w, NULL) == NULL);
	jw_wipe(&w);

	jw_init(&w);
	for (i = 0; i < JW_MAX_DEPTH + 1; i++)
	{
		jw_array(&w, NULL);
	}
	for (i = 0; i < JW_MAX_DEPTH + 1; i++)
	{
		jw_array_end(&w);
	}
	CHECK(w.failed);
	CHECK(jw_result(&w, NULL) == NULL);
	jw_wipe(&w);
}

/* a key that grows the buffer several times leaves no copy behind: the
 * writer never reallocs, it copies and wipes */
static void test_writer_grows(void)
{
	uint8_t key[4096];
	const char *doc;
	size_t len;
	jw_t w;

	memset(key, 0x5a, sizeof(key));
	jw_init(&w);
	jw_object(&w, NULL);
	jw_hex(&w, "k", key, sizeof(key));
	jw_object_end(&w);
	doc = jw_result(&w, &len);
	CHECK(doc);
	CHECK_INT(len, strlen("{\"k\":\"0x\"}") + 2 * sizeof(key));
	CHECK(strncmp(doc + 8, "5a5a5a", 6) == 0);
	jw_wipe(&w);
}

static void test_parse(void)
{
	char err[128];
	json_object *obj;
	uint64_t v;

	obj = xj_parse("{\"a\":1} ", 8, err, sizeof(err));
	CHECK(obj);
	json_object_put(obj);

	CHECK(xj_parse("{\"a\":1} x", 9, err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "trailing");
	CHECK(xj_parse("{\"a\":", 5, err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "truncated");
	CHECK(xj_parse("", 0, err, sizeof(err)) == NULL);
	CHECK(xj_parse("{]", 2, err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "malformed");

	obj = xj_parse("{\"neg\":-1,\"s\":\"1\",\"u\":7,\"o\":{}}", 31, err,
				   sizeof(err));
	CHECK_MSG(obj, "%s", err);
	CHECK(!xj_uint(obj, "neg", &v));
	CHECK(!xj_uint(obj, "s", &v));
	CHECK(!xj_uint(obj, "missing", &v));
	CHECK(xj_uint(obj, "u", &v) && v == 7);
	CHECK(xj_str(obj, "u") == NULL);
	CHECK(xj_member(obj, "o", json_type_object) != NULL);
	CHECK(xj_member(obj, "o", json_type_array) == NULL);
	json_object_put(obj);
}

static void test_time(void)
{
	time_t t;

	CHECK(xj_time("2026-12-03T14:34:00Z", &t));
	CHECK_INT(t, 1796308440);
	CHECK(xj_time("2026-12-03T14:34:00.123456789Z", &t));
	CHECK_INT(t, 1796308440);
	CHECK(xj_time("2026-12-03T15:34:00.5+01:00", &t));
	CHECK_INT(t, 1796308440);
	CHECK(xj_time("2026-12-03T09:04:00-05:30", &t));
	CHECK_INT(t, 1796308440);
	CHECK(xj_time("1970-01-01T00:00:00Z", &t));
	CHECK_INT(t, 0);
	CHECK(!xj_time("2026-12-03 14:34:00Z", &t));
	CHECK(!xj_time("2026-12-03T14:34:00", &t));
	CHECK(!xj_time("2026-13-03T14:34:00Z", &t));
	CHECK(!xj_time("2026-12-03T14:34:00.Z", &t));
	CHECK(!xj_time("2026-12-03T14:34:00Zjunk", &t));
	CHECK(!xj_time("0001-01-01T00:00:0", &t));
	CHECK(!xj_time(NULL, &t));
}

static void test_error_text(void)
{
	char buf[256], kind[32];

	xj_error_text(409, "{\n  \"error\": \"add sa: exists\",\n  \"kind\": "
				  "\"exists\"\n}\n", buf, sizeof(buf));
	CHECK_STR(buf, "HTTP 409, exists: add sa: exists");
	xj_error_kind("{\"error\":\"x\",\"kind\":\"epoch\"}", kind, sizeof(kind));
	CHECK_STR(kind, "epoch");

	/* what Go's ServeMux answers for a path it does not know */
	xj_error_text(404, "404 page not found\n", buf, sizeof(buf));
	CHECK_STR(buf, "HTTP 404: 404 page not found");
	xj_error_kind("404 page not found\n", kind, sizeof(kind));
	CHECK_STR(kind, "");

	xj_error_text(500, NULL, buf, sizeof(buf));
	CHECK_STR(buf, "HTTP 500");
	xj_error_text(502, "", buf, sizeof(buf));
	CHECK_STR(buf, "HTTP 502");
}

const test_t json_tests[] = {
	{ "json/writer-document", test_writer_document },
	{ "json/writer-parses-back", test_writer_parses_back },
	{ "json/writer-misuse", test_writer_misuse },
	{ "json/writer-grows", test_writer_grows },
	{ "json/parse", test_parse },
	{ "json/time", test_time },
	{ "json/error-text", test_error_text },
	{ NULL, NULL },
};
