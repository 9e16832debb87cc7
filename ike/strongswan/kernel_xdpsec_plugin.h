/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kernel-xdpsec: charon's IPsec backend on xdpsec, the XDP inline IPsec
 * offload dataplane. It provides kernel_ipsec_t only; addresses and routes
 * stay with kernel-netlink's kernel_net_t.
 *
 * @defgroup kernel_xdpsec kernel_xdpsec
 * @ingroup cplugins
 */

#ifndef KERNEL_XDPSEC_PLUGIN_H_
#define KERNEL_XDPSEC_PLUGIN_H_

#include <library.h>
#include <plugins/plugin.h>

typedef struct kernel_xdpsec_plugin_t kernel_xdpsec_plugin_t;

struct kernel_xdpsec_plugin_t {

	/** implements plugin interface */
	plugin_t plugin;
};

#endif /** KERNEL_XDPSEC_PLUGIN_H_ */
