package seqstate

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/ipsec"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func newClock() *clock                         { return &clock{t: time.Unix(1_800_000_000, 0)} }
func (c *clock) now() time.Time                { return c.t }
func (c *clock) add(d time.Duration) time.Time { c.t = c.t.Add(d); return c.t }

func testOptions(c *clock) Options {
	return Options{
		MinReservation: 1000,
		ReserveAhead:   10 * time.Second,
		InboundEvery:   time.Second,
		Now:            c.now,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func openMem(t testing.TB, m *memFS, o Options) *Store {
	t.Helper()
	s, err := openFS(m, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	srcAddr = netip.MustParseAddr("198.18.0.1")
	dstAddr = netip.MustParseAddr("198.19.0.1")
)

// saParams is an AES-GCM tunnel SA; key selects one of several keys.
func saParams(spi uint32, key byte, esn bool) esp.Params {
	k := make([]byte, 20)
	for i := range k {
		k[i] = key + byte(i)*13
	}
	return esp.Params{SPI: spi, Src: srcAddr, Dst: dstAddr, Mode: ipsec.ModeTunnel, ESN: esn, ReplayWindow: 64,
		AEAD: esp.AEADAlg{Name: "aes-gcm-128", Key: k}}
}

// innerPacket is a minimal IPv4 UDP packet.
func innerPacket() []byte {
	p := make([]byte, 48)
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	copy(p[12:], []byte{198, 18, 1, 1})
	copy(p[16:], []byte{198, 18, 2, 2})
	return p
}

// packet is what Encap sent: the ESP sequence number (low half) and IV.
type packet struct {
	wire []byte
	seq  uint32
	iv   uint64
}

func encap(sa *esp.SA) (packet, error) {
	in := innerPacket()
	buf := make([]byte, esp.Headroom+len(in)+esp.Tailroom)
	copy(buf[esp.Headroom:], in)
	s, e, err := sa.Encap(buf, esp.Headroom, len(in))
	if err != nil {
		return packet{}, err
	}
	w := append([]byte(nil), buf[s:e]...)
	return packet{wire: w, seq: binary.BigEndian.Uint32(w[24:]), iv: binary.BigEndian.Uint64(w[28:])}, nil
}

func decap(sa *esp.SA, w []byte) error {
	buf := make([]byte, esp.Headroom+len(w))
	copy(buf[esp.Headroom:], w)
	_, _, err := sa.Decap(buf, esp.Headroom, len(w))
	return err
}

// newOutbound reserves for p and creates and attaches the SA, as the driver will.
func newOutbound(t testing.TB, s *Store, p esp.Params) (*Outbound, *esp.SA) {
	t.Helper()
	h, err := s.Outbound(p)
	if err != nil {
		t.Fatal(err)
	}
	p.Seq = h.Seq()
	sa, err := esp.New(p, h.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Attach(sa); err != nil {
		t.Fatal(err)
	}
	return h, sa
}

// fakeSender is an outbound SA reduced to its counter, for rate tests.
type fakeSender struct {
	last, ceiling atomic.Uint64
	limit         uint64
}

func (f *fakeSender) NextSeq() uint64  { return f.last.Load() + 1 }
func (f *fakeSender) SeqLimit() uint64 { return f.limit }
func (f *fakeSender) RaiseCeiling(c uint64) {
	for {
		cur := f.ceiling.Load()
		if c <= cur || f.ceiling.CompareAndSwap(cur, c) {
			return
		}
	}
}

// send uses n numbers, or as many as the ceiling lets it; it returns how many.
func (f *fakeSender) send(n uint64) uint64 {
	last := f.last.Load()
	to := min(last+n, f.ceiling.Load())
	if to < last {
		to = last
	}
	f.last.Store(to)
	return to - last
}
