package daemon

import (
	"github.com/xdpsec/xdpsec/crypto/pmtu"
	"github.com/xdpsec/xdpsec/loader/neigh"
)

type (
	neighCache    = neigh.Cache
	pmtuResponder = pmtu.Responder
)
