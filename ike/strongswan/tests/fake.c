/* SPDX-License-Identifier: GPL-2.0-or-later */

#define _GNU_SOURCE

#include "fake.h"
#include "test.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../xdpsec_client.h"
#include "../xdpsec_json.h"

void fake_init(fake_t *f, const char *name)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "%s/%s.sock", test_tmpdir(), name);
}

static bool answers(fake_t *f)
{
	json_object *obj = fake_call(f, "GET", "/v1/info", NULL, NULL);

	json_object_put(obj);
	return obj != NULL;
}

bool fake_start(fake_t *f, const char *extra)
{
	char cmd[1024];
	const char *python = getenv("FAKE_PYTHON");
	int64_t deadline;

	if (!python)
	{
		/* Debian's interpreter directly: a version manager's shim in PATH
		 * adds a shell script and its hooks to every start */
		python = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3"
													   : "python3";
	}
	snprintf(cmd, sizeof(cmd), "exec %s %s --socket %s --keepalive 1 %s "
			 "2>>%s.log", python, FAKE_DAEMON,
			 f->path, extra ? extra : "", f->path);
	f->pid = fork();
	if (f->pid < 0)
	{
		return false;
	}
	if (f->pid == 0)
	{
		/* a test that stops early or crashes takes its daemon along; and
		 * the runner's ignored SIGPIPE is not the daemon's */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", cmd, (char*)NULL);
		_exit(127);
	}
	deadline = test_now_ms() + 10000;
	while (test_now_ms() < deadline)
	{
		if (answers(f))
		{
			return true;
		}
		usleep(20000);
	}
	fake_kill(f);
	snprintf(cmd, sizeof(cmd), "echo '    fake daemon did not come up:'; "
			 "sed 's/^/      /' %s.log >&2", f->path);
	if (system(cmd) != 0)
	{
		return false;
	}
	return false;
}

void fake_stop(fake_t *f)
{
	if (f->pid > 0)
	{
		kill(f->pid, SIGTERM);
		waitpid(f->pid, NULL, 0);
		f->pid = 0;
	}
	unlink(f->path);
}

void fake_kill(fake_t *f)
{
	if (f->pid > 0)
	{
		kill(f->pid, SIGKILL);
		waitpid(f->pid, NULL, 0);
		f->pid = 0;
	}
}

json_object *fake_call(fake_t *f, const char *method, const char *path,
					   const char *body, int *status)
{
	char err[XDPSEC_ERRLEN];
	xc_response_t resp;
	xc_client_t *c;
	json_object *obj = NULL;

	c = xc_client_create(f->path, 5000, 0);
	if (status)
	{
		*status = 0;
	}
	if (xc_request(c, method, path, body, body ? strlen(body) : 0, &resp, err,
				   sizeof(err)) == XC_OK)
	{
		if (status)
		{
			*status = resp.status;
		}
		if (resp.status >= 200 && resp.status < 300)
		{
			obj = xj_parse(resp.body, resp.len, err, sizeof(err));
		}
		xc_response_free(&resp);
	}
	xc_client_destroy(c);
	return obj;
}

bool fake_post(fake_t *f, const char *path, const char *fmt, ...)
{
	char body[4096];
	json_object *obj;
	va_list args;

	va_start(args, fmt);
	vsnprintf(body, sizeof(body), fmt, args);
	va_end(args);
	obj = fake_call(f, "POST", path, body, NULL);
	json_object_put(obj);
	return obj != NULL;
}

int fake_count(fake_t *f, const char *key)
{
	json_object *st = fake_call(f, "GET", "/_fake/state", NULL, NULL);
	json_object *arr = xj_member(st, key, json_type_array);
	int n = arr ? (int)json_object_array_length(arr) : -1;

	json_object_put(st);
	return n;
}

bool wait_until(bool (*cond)(void *ctx), void *ctx, int ms)
{
	int64_t deadline = test_now_ms() + ms;

	while (!cond(ctx))
	{
		if (test_now_ms() > deadline)
		{
			return false;
		}
		usleep(10000);
	}
	return true;
}
