/* SPDX-License-Identifier: GPL-2.0-or-later */

#include "kernel_xdpsec_plugin.h"
#include "kernel_xdpsec_ipsec.h"

#include <daemon.h>

typedef struct private_kernel_xdpsec_plugin_t private_kernel_xdpsec_plugin_t;

struct private_kernel_xdpsec_plugin_t {

	kernel_xdpsec_plugin_t public;
};

METHOD(plugin_t, get_name, char*,
	private_kernel_xdpsec_plugin_t *this)
{
	(void)this;
	return "kernel-xdpsec";
}

METHOD(plugin_t, get_features, int,
	private_kernel_xdpsec_plugin_t *this, plugin_feature_t *features[])
{
	/* charon takes the first kernel-ipsec that registers: this plugin loads
	 * before kernel-netlink (its load priority, kernel-xdpsec.conf), whose
	 * kernel-ipsec then fails to register and is never created, while its
	 * kernel-net serves charon as usual */
	static plugin_feature_t f[] = {
		PLUGIN_CALLBACK(kernel_ipsec_register, kernel_xdpsec_ipsec_create),
			PLUGIN_PROVIDE(CUSTOM, "kernel-ipsec"),
	};
	(void)this;
	*features = f;
	return countof(f);
}

METHOD(plugin_t, destroy, void,
	private_kernel_xdpsec_plugin_t *this)
{
	free(this);
}

/* the only symbol charon looks up (the objects are built with hidden
 * visibility) */
__attribute__((visibility("default")))
plugin_t *kernel_xdpsec_plugin_create();

/*
 * See header
 */
plugin_t *kernel_xdpsec_plugin_create()
{
	private_kernel_xdpsec_plugin_t *this;

	INIT(this,
		.public = {
			.plugin = {
				.get_name = _get_name,
				.get_features = _get_features,
				.destroy = _destroy,
			},
		},
	);
	return &this->public.plugin;
}
