/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * charon's kernel_ipsec_t on the xdpsec daemon's API (docs/ike-api.md).
 */

#ifndef KERNEL_XDPSEC_IPSEC_H_
#define KERNEL_XDPSEC_IPSEC_H_

#include <kernel/kernel_ipsec.h>

typedef struct kernel_xdpsec_ipsec_t kernel_xdpsec_ipsec_t;

struct kernel_xdpsec_ipsec_t {

	/** implements kernel_ipsec_t */
	kernel_ipsec_t interface;
};

/**
 * Create the IPsec backend. It never fails for want of a daemon: calls made
 * while the daemon is absent fail with a logged reason, and the next one
 * tries again.
 */
kernel_xdpsec_ipsec_t *kernel_xdpsec_ipsec_create();

#endif /** KERNEL_XDPSEC_IPSEC_H_ */
