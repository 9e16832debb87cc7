package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"net/netip"
	"runtime"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/xdpsec/xdpsec/crypto/internal/inetsum"
	"github.com/xdpsec/xdpsec/crypto/keymem"
	"github.com/xdpsec/xdpsec/crypto/replay"
	"github.com/xdpsec/xdpsec/ipsec"
)

// Buffer geometry. Encap and Decap take the packet at buf[off:off+n] and need
// buf[off-Headroom:off] and buf[off+n:off+n+Tailroom] to exist; both regions
// may be overwritten (the front one also serves as per-call scratch space, so
// the hot path needs no heap and no per-SA scratch shared between workers).
const (
	// Headroom is the space Encap and Decap need in front of the packet:
	// the largest encapsulation (outer IPv6 40 + UDP 8 + ESP 8 + CBC IV 16 =
	// 72 bytes) plus 56 bytes of scratch.
	Headroom = 128
	// Tailroom is the space Encap needs behind the packet: padding (at most
	// 15 bytes for a 16-byte block), pad length, next header and a 16-byte
	// ICV, rounded up. TFC padding needs more (see Params.TFCPadTo).
	Tailroom = 64
	// MaxOverhead is the most bytes Encap adds to a packet (without TFC
	// padding): the 72 bytes in front and 33 behind.
	MaxOverhead = 72 + 15 + 2 + 16
	// MaxPacket is the largest packet Encap produces or Decap accepts.
	MaxPacket = 65535

	scratchLen = 56 // buf[off-Headroom : off-Headroom+scratchLen]
)

// SA is one Security Association: one direction of one ESP flow. It exposes
// both Encap (the outbound transform) and Decap (the inbound one); a dataplane
// uses one of them per SA, the offline pcap tool either.
//
// Concurrency: Encap, Decap, Counters, NextSeq, Ceiling, RaiseCeiling and
// ReplayTop are safe to call from any number of goroutines at once (see Wipe
// for its one rule). Outbound sequence numbers come from an atomic counter,
// so concurrent Encap calls never share one; the replay window serialises
// on a short lock taken only after the ICV verified.
type SA struct {
	spi      uint32
	mode     ipsec.Mode
	outer6   bool // outer (tunnel) or packet (transport) family is IPv6
	src, dst [16]byte
	esn      bool
	udp      bool
	sport    uint16
	dport    uint16
	ttl      uint8
	df       DFPolicy
	tfcPadTo int
	ivLen    int
	icvLen   int
	align    int
	kind     suiteKind
	name     string
	seqLimit uint64 // highest sequence number Encap may use
	ivMask   uint64 // AEAD suites: the explicit IV is seq XOR ivMask (see iv.go)
	// hdr is tunnel mode's outer header with its per-packet fields zero
	// (IPv4: DSCP/ECN, total length, ID, flags and checksum; IPv6: traffic
	// class and payload length), built once by buildHdr. hdrSum is the
	// one's-complement sum of the IPv4 one: Encap adds the per-packet
	// fields to it (RFC 1624) instead of summing the header again.
	hdr    [40]byte
	hdrSum uint32
	// out and window are shared with the SAs that continue this one
	// (Continue): its counter, ceiling and replay state are theirs too.
	out *outSeq
	// outBase and outBytesBase are out's packet (last) and byte counts
	// when the SA was made: Counters reports what was added since.
	outBase, outBytesBase uint64
	window                *replay.Window
	st                    atomic.Pointer[state]

	// The fields above are read by every call; the counters below are
	// written by every Decap and refused call (Encap counts in out).
	// Separate cache lines keep workers on different cores from
	// invalidating each other's read-mostly line.
	_   [64]byte
	ctr counters

	// ivFunc, when set by tests, replaces IV generation (known-answer vectors
	// carry arbitrary IVs).
	ivFunc func(seq uint64, iv []byte)
	// trailerFunc, when set by tests, may corrupt padding ‖ pad length ‖
	// next header before encryption.
	trailerFunc func(trailer []byte)
}

// state is everything derived from key material. Wipe drops the SA's only
// reference after zeroing keys, so in-flight calls finish with it and later
// calls fail with ErrWiped.
type state struct {
	mem  *keymem.Buf // locked memory behind keys
	keys []byte      // one buffer holding every key copy the SA keeps
	salt []byte      // aliases keys
	aead cipher.AEAD // GCM, ChaCha20-Poly1305, GMAC
	blk  cipher.Block
	pool etmPool // per-call state of the encrypt-then-MAC suites
}

// etmPool keeps etmStates for reuse in a few atomic slots. Unlike sync.Pool
// it is never emptied by the garbage collector, so the hot path stays free
// of allocations in steady state; a call finding every slot empty (more
// concurrent callers than slots) allocates a state and returns it after.
//
// There are at least twice as many slots as Ps (GOMAXPROCS at New): at most
// that many goroutines run at once, so only a caller preempted while holding
// a state can push another into allocating.
type etmPool struct {
	slots []atomic.Pointer[etmState]
	newFn func() *etmState
}

func (p *etmPool) get() *etmState {
	for i := range p.slots {
		if s := p.slots[i].Swap(nil); s != nil {
			return s
		}
	}
	return p.newFn()
}

func (p *etmPool) put(s *etmState) {
	for i := range p.slots {
		if p.slots[i].CompareAndSwap(nil, s) {
			return
		}
	}
}

// etmState is per-goroutine state of an encrypt-then-MAC suite: HMAC and CBC
// objects keep running state, so each call borrows one from the pool.
type etmState struct {
	mac       hash.Hash
	enc       cipher.BlockMode
	dec       cipher.BlockMode
	ivGen     cipher.Stream      // CBC IV generator (see iv.go); nil until the first Encap
	ivs       [ivBatch * 16]byte // the current batch of CBC IVs
	ivNext    int                // index of the next unused IV in ivs
	ivBatches int                // batches drawn under ivGen's key
}

type ivSetter interface{ SetIV([]byte) }

// New validates p and returns an SA ready for Encap and Decap. Without
// options the AEAD IV mask is drawn from crypto/rand and there is no
// sequence ceiling; see WithIVMask and WithCeiling for an SA whose state is
// kept across restarts.
func New(p Params, opts ...Option) (*SA, error) {
	spec, err := p.suite()
	if err != nil {
		return nil, fmt.Errorf("validate sa: %w", err)
	}
	o := options{ceiling: NoCeiling}
	for _, opt := range opts {
		opt(&o)
	}
	sa := newSA(p, spec)
	sa.out = &outSeq{}
	sa.out.last.Store(p.Seq)
	sa.outBase = p.Seq
	sa.out.ceiling.Store(o.ceiling)
	sa.window = replay.New(p.ReplayWindow, p.Seq)
	if spec.ivLen == 8 { // the AEAD suites
		sa.ivMask = o.ivMask
		if !o.ivMaskSet {
			sa.ivMask = randomMask()
		}
	}
	if err := sa.build(spec); err != nil {
		return nil, err
	}
	return sa, nil
}

// newSA fills in everything but the sequence state and the keys.
func newSA(p Params, spec suiteSpec) *SA {
	sa := &SA{
		spi:      p.SPI,
		mode:     p.Mode,
		outer6:   !p.Src.Unmap().Is4(),
		src:      p.Src.Unmap().As16(),
		dst:      p.Dst.Unmap().As16(),
		esn:      p.ESN,
		ttl:      p.TTL,
		df:       p.DF,
		tfcPadTo: int(p.TFCPadTo),
		ivLen:    spec.ivLen,
		icvLen:   spec.icvLen,
		align:    spec.align,
		kind:     spec.kind,
		name:     spec.name,
		seqLimit: 1<<32 - 1,
	}
	if sa.ttl == 0 {
		sa.ttl = DefaultTTL
	}
	if p.ESN {
		sa.seqLimit = 1<<64 - 1
	}
	if p.UDPEncap != nil {
		sa.udp, sa.sport, sa.dport = true, p.UDPEncap.SrcPort, p.UDPEncap.DstPort
	}
	sa.buildHdr()
	return sa
}

// buildHdr fills in hdr and hdrSum from the SA's addresses, TTL and
// encapsulation. Whatever changes those must call it again before the SA is
// published.
func (sa *SA) buildHdr() {
	proto := byte(protoESP)
	if sa.udp {
		proto = protoUDP
	}
	h := &sa.hdr
	*h = [40]byte{}
	if sa.outer6 {
		h[0] = 6 << 4
		h[6], h[7] = proto, sa.ttl
		copy(h[8:24], sa.src[:])
		copy(h[24:40], sa.dst[:])
		return
	}
	h[0], h[8], h[9] = 0x45, sa.ttl, proto
	copy(h[12:16], sa.src[12:])
	copy(h[16:20], sa.dst[12:])
	sa.hdrSum = uint32(inetsum.Fold(inetsum.Sum(h[:20], 0)))
}

// build copies the keys into one buffer owned by the SA, in locked key
// memory (package keymem), and creates the cipher objects.
func (sa *SA) build(spec suiteSpec) (err error) {
	st := &state{mem: keymem.Alloc(len(spec.cipher) + len(spec.salt) + len(spec.authKey))}
	st.keys = st.mem.Bytes()[:0]
	st.keys = append(st.keys, spec.cipher...)
	st.keys = append(st.keys, spec.salt...)
	st.keys = append(st.keys, spec.authKey...)
	defer func() {
		if err != nil {
			st.mem.Free()
		}
	}()
	// An SA dropped without Wipe still returns its key memory: nothing but
	// st reaches keys, salt and the pool's closure (which captures only
	// slices of keys), so once st is unreachable no call can be using them.
	runtime.AddCleanup(st, (*keymem.Buf).Free, st.mem)
	ck := st.keys[:len(spec.cipher)]
	st.salt = st.keys[len(spec.cipher) : len(spec.cipher)+len(spec.salt)]
	ak := st.keys[len(spec.cipher)+len(spec.salt):]

	switch spec.kind {
	case kindGCM, kindGMAC:
		b, err := aes.NewCipher(ck)
		if err != nil {
			return fmt.Errorf("create aes cipher: %w", err)
		}
		if st.aead, err = cipher.NewGCMWithTagSize(b, spec.icvLen); err != nil {
			return fmt.Errorf("create gcm: %w", err)
		}
	case kindChaCha:
		if st.aead, err = chacha20poly1305.New(ck); err != nil {
			return fmt.Errorf("create chacha20-poly1305: %w", err)
		}
	case kindCBC, kindNull:
		if spec.kind == kindCBC {
			if st.blk, err = aes.NewCipher(ck); err != nil {
				return fmt.Errorf("create aes cipher: %w", err)
			}
		}
		blk := st.blk
		st.pool.slots = make([]atomic.Pointer[etmState], max(8, 2*runtime.GOMAXPROCS(0)))
		st.pool.newFn = func() *etmState {
			e := &etmState{mac: hmac.New(sha256.New, ak), ivNext: ivBatch}
			if blk != nil {
				var zero [16]byte
				e.enc = cipher.NewCBCEncrypter(blk, zero[:])
				e.dec = cipher.NewCBCDecrypter(blk, zero[:])
			}
			return e
		}
	}
	sa.st.Store(st)
	return nil
}

// SPI returns the SA's SPI.
func (sa *SA) SPI() uint32 { return sa.spi }

// Algorithm returns the canonical name of the SA's suite, e.g.
// "rfc4106(gcm(aes))" or "cbc(aes)+hmac(sha256)".
func (sa *SA) Algorithm() string { return sa.name }

// Overhead returns how many bytes Encap adds to an inner packet of n bytes
// (in transport mode: a packet whose IP header has no options or extension
// headers).
func (sa *SA) Overhead(n int) int {
	if sa.mode == ipsec.ModeTransport {
		hl := 20
		if sa.outer6 {
			hl = 40
		}
		return sa.frontLen() + sa.trailerLen(n-hl)
	}
	padded := max(n, sa.tfcPadTo)
	return sa.frontLen() + padded - n + sa.trailerLen(padded)
}

// Wipe zeroes the SA's key material and drops its cipher objects; later Encap
// and Decap calls fail with ErrWiped. Go cannot reach into the expanded key
// schedules inside crypto/aes or x/crypto objects: dropping every reference
// is the most it can do, after which the garbage collector frees them.
// Calls that start after Wipe fail with ErrWiped. Wipe zeroes bytes that a
// call already running may still read, so the control plane should first
// unpublish the SA from the workers (their next lookup misses it) and wipe
// after that; Wipe itself is idempotent and safe from any goroutine.
func (sa *SA) Wipe() {
	st := sa.st.Swap(nil)
	if st == nil {
		return
	}
	st.mem.Free() // zeroes keys and salt
	for i := range st.pool.slots {
		st.pool.slots[i].Store(nil) // drop the pooled HMAC/CBC states
	}
}

// addrPrefix returns the SA's addresses as netip values (for diagnostics).
func (sa *SA) addrs() (netip.Addr, netip.Addr) {
	if sa.outer6 {
		return netip.AddrFrom16(sa.src), netip.AddrFrom16(sa.dst)
	}
	return netip.AddrFrom16(sa.src).Unmap(), netip.AddrFrom16(sa.dst).Unmap()
}

// String describes the SA without key material.
func (sa *SA) String() string {
	s, d := sa.addrs()
	return fmt.Sprintf("spi %#08x %s->%s %s %s", sa.spi, s, d, sa.mode, sa.name)
}
