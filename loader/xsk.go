package loader

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

func (c *Card) xskMap(s Side) *ebpf.Map {
	if s == SideProtected {
		return c.objs.XsksOut
	}
	return c.objs.XsksIn
}

// RegisterSocket makes the card redirect the side's packets received on queue to the AF_XDP socket fd
// (bound to that side's interface and queue). The map holds its own reference to the socket.
func (c *Card) RegisterSocket(s Side, queue uint32, fd int) error {
	if s > SideWire {
		return fmt.Errorf("%w: side %d", ErrInvalid, s)
	}
	if queue >= c.cfg.Queues {
		return fmt.Errorf("register socket on queue %d: %w (%d queues)", queue, ErrCapacity, c.cfg.Queues)
	}
	if err := c.xskMap(s).Put(queue, uint32(fd)); err != nil {
		return fmt.Errorf("register %s socket on queue %d: %w", s, queue, err)
	}
	return nil
}

// UnregisterSocket stops redirecting the side's queue; its packets then get the no-socket verdict.
func (c *Card) UnregisterSocket(s Side, queue uint32) error {
	if s > SideWire {
		return fmt.Errorf("%w: side %d", ErrInvalid, s)
	}
	if err := c.xskMap(s).Delete(queue); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unregister %s socket on queue %d: %w", s, queue, err)
	}
	return nil
}
