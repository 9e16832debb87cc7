/* SPDX-License-Identifier: GPL-2.0-or-later */

#include "test.h"

const test_t client_tests[] = {
	{ NULL, NULL },
};
