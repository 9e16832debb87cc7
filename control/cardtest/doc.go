// Package cardtest holds the control plane's test against the real card: a gateway pair (internal/testbed,
// control/daemon) on veth pairs in network namespaces, driven through the manager's API as `xdpsec sa`
// would. It needs root and skips without it. There is no non-test code here.
package cardtest
