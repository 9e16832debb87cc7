/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A minimal test runner: each test is a function registered in test_main.c;
 * a failed check reports file, line and the values, and ends that test.
 */

#ifndef XDPSEC_TEST_H_
#define XDPSEC_TEST_H_

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/** Set by a failed check; the runner resets it per test. */
extern bool test_failed;

void test_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define CHECK(cond) do { \
	if (!(cond)) { \
		test_fail(__FILE__, __LINE__, "%s", #cond); \
		return; \
	} \
} while (0)

#define CHECK_MSG(cond, ...) do { \
	if (!(cond)) { \
		test_fail(__FILE__, __LINE__, __VA_ARGS__); \
		return; \
	} \
} while (0)

#define CHECK_INT(got, want) do { \
	long long _g = (long long)(got), _w = (long long)(want); \
	if (_g != _w) { \
		test_fail(__FILE__, __LINE__, "%s = %lld, want %lld", #got, _g, _w); \
		return; \
	} \
} while (0)

#define CHECK_STR(got, want) do { \
	const char *_g = (got), *_w = (want); \
	if (!_g || strcmp(_g, _w) != 0) { \
		test_fail(__FILE__, __LINE__, "%s = \"%s\", want \"%s\"", #got, \
				  _g ? _g : "(null)", _w); \
		return; \
	} \
} while (0)

#define CHECK_CONTAINS(got, want) do { \
	const char *_g = (got), *_w = (want); \
	if (!_g || !strstr(_g, _w)) { \
		test_fail(__FILE__, __LINE__, "%s = \"%s\", want it to contain " \
				  "\"%s\"", #got, _g ? _g : "(null)", _w); \
		return; \
	} \
} while (0)

typedef struct {
	const char *name;
	void (*fn)(void);
} test_t;

/** Milliseconds of CLOCK_MONOTONIC. */
int64_t test_now_ms(void);

/** A fresh temporary directory for this test (removed at exit). */
const char *test_tmpdir(void);

#endif /** XDPSEC_TEST_H_ */
