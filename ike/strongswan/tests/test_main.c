/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Runs the plugin's unit tests: kernel-xdpsec-tests [name-prefix...]
 */

#define _GNU_SOURCE

#include "test.h"

#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <library.h>
#include <daemon.h>

bool test_failed;

static char tmpdir[256];

extern const test_t alg_tests[], json_tests[], spd_tests[], client_tests[],
	events_tests[], ipsec_tests[];

static const test_t *suites[] = {
	alg_tests, json_tests, spd_tests, client_tests, events_tests, ipsec_tests,
};

void test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list args;

	fprintf(stderr, "    %s:%d: ", file, line);
	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fprintf(stderr, "\n");
	test_failed = true;
}

int64_t test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *test_tmpdir(void)
{
	return tmpdir;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
					struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void cleanup(void)
{
	if (tmpdir[0])
	{
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
}

static bool selected(const char *name, int argc, char *argv[])
{
	int i;

	if (argc < 2)
	{
		return true;
	}
	for (i = 1; i < argc; i++)
	{
		if (strncmp(name, argv[i], strlen(argv[i])) == 0)
		{
			return true;
		}
	}
	return false;
}

int main(int argc, char *argv[])
{
	char conf[300];
	FILE *f;
	int failed = 0, passed = 0;
	size_t s;

	signal(SIGPIPE, SIG_IGN);
	snprintf(tmpdir, sizeof(tmpdir), "%s/kernel-xdpsec-tests-XXXXXX",
			 getenv("TMPDIR") ?: "/tmp");
	if (!mkdtemp(tmpdir))
	{
		perror("mkdtemp");
		return 2;
	}
	atexit(cleanup);

	/* charon's libraries as the plugin meets them, with a configuration of
	 * our own and quiet logging (KERNEL_XDPSEC_TEST_LOG=2 for more) */
	snprintf(conf, sizeof(conf), "%s/strongswan.conf", tmpdir);
	f = fopen(conf, "w");
	if (!f)
	{
		perror(conf);
		return 2;
	}
	fprintf(f, "charon {\n  plugins {\n    kernel-xdpsec {\n      timeout = 2000\n"
			"      connect_wait = 300\n    }\n  }\n}\n");
	fclose(f);
	dbg_default_set_level(getenv("KERNEL_XDPSEC_TEST_LOG") ?
						  atoi(getenv("KERNEL_XDPSEC_TEST_LOG")) : -1);
	if (!library_init(conf, "charon") || !libcharon_init())
	{
		fprintf(stderr, "initializing libstrongswan/libcharon failed\n");
		return 2;
	}

	for (s = 0; s < countof(suites); s++)
	{
		const test_t *t;

		for (t = suites[s]; t->name; t++)
		{
			if (!selected(t->name, argc, argv))
			{
				continue;
			}
			test_failed = false;
			t->fn();
			if (test_failed)
			{
				printf("FAIL %s\n", t->name);
				failed++;
			}
			else
			{
				printf("ok   %s\n", t->name);
				passed++;
			}
			fflush(stdout);
		}
	}
	libcharon_deinit();
	library_deinit();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
