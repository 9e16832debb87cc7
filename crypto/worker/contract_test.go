//go:build linux

package worker

import (
	"github.com/xdpsec/xdpsec/crypto/pmtu"
	"github.com/xdpsec/xdpsec/loader"
	"github.com/xdpsec/xdpsec/loader/neigh"
)

// The daemon plugs these in: the card's mmap'd counters, the netlink
// route/neighbour cache and the ICMP responder.
var (
	_ SACounters      = (*loader.WorkerStats)(nil)
	_ NextHopResolver = (*neigh.Cache)(nil)
	_ PMTU            = (*pmtu.Responder)(nil)
)
