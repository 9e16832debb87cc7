package ikebed

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/xdpsec/xdpsec/internal/testbed"
)

// Conn is one side of an IKE connection between the testbed's gateways, with pre-shared keys.
type Conn struct {
	Local, Remote netip.Addr // the wire addresses IKE runs between
	// LocalAddrs and RemoteAddrs, when set, replace Local and Remote in swanctl's local_addrs and
	// remote_addrs (a subnet lets MOBIKE move among its addresses).
	LocalAddrs, RemoteAddrs string
	LocalID, RemoteID       string
	Children                []Child
	// Encap forces ESP in UDP (what kernel-libipsec needs on both sides).
	Encap bool
	// Unique is swanctl's unique (replace: a peer that comes back replaces its old IKE_SA).
	Unique string
	// DPD is the dead peer detection delay (0: none).
	DPD time.Duration
}

// Child is one CHILD_SA of a Conn.
type Child struct {
	Name              string
	LocalTS, RemoteTS string // swanctl traffic selectors
	ESP               string // esp_proposals; default aes128gcm16
	// RekeyTime 0 keeps charon's default (1 h); LifeTime 0 is charon's default (RekeyTime · 1.1).
	// RandTime is 0 unless set: rekeys come at RekeyTime, which the tests count on.
	RekeyTime, LifeTime, RandTime time.Duration
	StartAction                   string // none (default), trap or start
}

const psk = "0x786470736563206b657920666f72207465737473206f6e6c79" // "xdpsec key for tests only"

// Swanctl writes the connection as swanctl.conf.
func (c Conn) Swanctl() string {
	var b strings.Builder
	local, remote := c.Local.String(), c.Remote.String()
	if c.LocalAddrs != "" {
		local = c.LocalAddrs
	}
	if c.RemoteAddrs != "" {
		remote = c.RemoteAddrs
	}
	fmt.Fprintf(&b, "connections {\n  gw {\n    local_addrs = %s\n    remote_addrs = %s\n", local, remote)
	fmt.Fprintf(&b, "    proposals = aes128-sha256-x25519\n    rekey_time = 0\n")
	if c.Encap {
		fmt.Fprintf(&b, "    encap = yes\n")
	}
	if c.Unique != "" {
		fmt.Fprintf(&b, "    unique = %s\n", c.Unique)
	}
	if c.DPD > 0 {
		fmt.Fprintf(&b, "    dpd_delay = %ds\n", int(c.DPD.Seconds()))
	}
	fmt.Fprintf(&b, "    local {\n      auth = psk\n      id = %s\n    }\n    remote {\n      auth = psk\n      id = %s\n    }\n",
		c.LocalID, c.RemoteID)
	fmt.Fprintf(&b, "    children {\n")
	for _, ch := range c.Children {
		esp := ch.ESP
		if esp == "" {
			esp = "aes128gcm16"
		}
		fmt.Fprintf(&b, "      %s {\n        local_ts = %s\n        remote_ts = %s\n        esp_proposals = %s\n",
			ch.Name, ch.LocalTS, ch.RemoteTS, esp)
		if ch.RekeyTime > 0 {
			fmt.Fprintf(&b, "        rekey_time = %ds\n", int(ch.RekeyTime.Seconds()))
		}
		if ch.LifeTime > 0 {
			fmt.Fprintf(&b, "        life_time = %ds\n", int(ch.LifeTime.Seconds()))
		}
		fmt.Fprintf(&b, "        rand_time = %ds\n", int(ch.RandTime.Seconds()))
		if ch.StartAction != "" {
			fmt.Fprintf(&b, "        start_action = %s\n", ch.StartAction)
		}
		fmt.Fprintf(&b, "      }\n")
	}
	fmt.Fprintf(&b, "    }\n  }\n}\nsecrets {\n  ike-gw {\n    id-a = %s\n    id-b = %s\n    secret = %s\n  }\n}\n",
		c.LocalID, c.RemoteID, psk)
	return b.String()
}

// Pair returns the two sides of one connection between gw1 and gw2 with the same children (the
// traffic selectors mirrored), IPv4 on the wire. gw1's children get opts applied last.
func Pair(children ...Child) (gw1, gw2 Conn) {
	gw1 = Conn{Local: testbed.GW1WANAddr4, Remote: testbed.GW2WANAddr4, LocalID: "gw1.test", RemoteID: "gw2.test"}
	gw2 = Conn{Local: testbed.GW2WANAddr4, Remote: testbed.GW1WANAddr4, LocalID: "gw2.test", RemoteID: "gw1.test"}
	for _, ch := range children {
		gw1.Children = append(gw1.Children, ch)
		m := ch
		m.LocalTS, m.RemoteTS = ch.RemoteTS, ch.LocalTS
		gw2.Children = append(gw2.Children, m)
	}
	return gw1, gw2
}

// LAN is the child between h1's and h2's LANs (IPv4), as gw1 sees it.
func LAN(name string) Child {
	return Child{Name: name, LocalTS: testbed.LAN1Prefix4.String(), RemoteTS: testbed.LAN2Prefix4.String()}
}
