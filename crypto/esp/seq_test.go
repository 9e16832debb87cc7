package esp

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/xdpsec/xdpsec/crypto/internal/inetsum"

	"github.com/xdpsec/xdpsec/ipsec"
)

// sent is one packet Encap produced: the wire bytes and the ESP fields.
type sent struct {
	wire []byte
	seq  uint32 // the low half on the wire
	iv   []byte
}

// encapOne seals a fixed 100-byte inner packet and returns what went out
// (outer IPv4 or IPv6, with or without UDP).
func encapOne(t testing.TB, sa *SA) (sent, error) {
	t.Helper()
	pkt := innerPacketFixed(72)
	buf, off := frame(pkt, 0)
	s, e, err := sa.Encap(buf, off, len(pkt))
	if err != nil {
		return sent{}, err
	}
	w := append([]byte(nil), buf[s:e]...)
	h := 20
	if sa.outer6 {
		h = 40
	}
	if sa.udp {
		h += 8
	}
	return sent{wire: w, seq: binary.BigEndian.Uint32(w[h+4:]), iv: w[h+8 : h+8+sa.ivLen]}, nil
}

func mustEncap(t testing.TB, sa *SA) sent {
	t.Helper()
	p, err := encapOne(t, sa)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func decapWire(sa *SA, w []byte) error {
	buf := make([]byte, Headroom+len(w))
	copy(buf[Headroom:], w)
	_, _, err := sa.Decap(buf, Headroom, len(w))
	return err
}

var aeadSuites = []suiteCase{suites[0], suites[1], suites[2], suites[3]}

// TestIVIsSeqXorMask checks the AEAD IV construction for every AEAD suite:
// IV = 64-bit sequence number XOR the mask, with ESN (the high half counts)
// and without; mask 0 gives the sequence number itself.
func TestIVIsSeqXorMask(t *testing.T) {
	for _, s := range aeadSuites {
		for _, esn := range []bool{false, true} {
			for _, mask := range []uint64{0, 0x8000_0000_0000_0001, 0xdead_beef_0bad_f00d} {
				c := saCase{suite: s, mode: ipsec.ModeTunnel, esn: esn, window: 64, initSeq: 1<<32 - 3}
				sa, err := New(c.params(), WithIVMask(mask))
				if err != nil {
					t.Fatal(err)
				}
				if sa.IVMask() != mask {
					t.Fatalf("IVMask %x, want %x", sa.IVMask(), mask)
				}
				_, in := c.pair(t)
				for i := range 5 {
					p, err := encapOne(t, sa)
					if err != nil {
						if !esn && errors.Is(err, ErrSeqExhausted) && i == 2 {
							break
						}
						t.Fatal(err)
					}
					seq := c.initSeq + uint64(i) + 1
					if got := binary.BigEndian.Uint64(p.iv); got != seq^mask {
						t.Fatalf("%s esn=%v mask %x: seq %d iv %x, want %x", s.name, esn, mask, seq, got, seq^mask)
					}
					// The receiver needs no mask: the IV travels.
					if err := decapWire(in, p.wire); err != nil {
						t.Fatalf("%s esn=%v: decap: %v", s.name, esn, err)
					}
				}
			}
		}
	}
}

// TestIVMaskDrawnPerSA: without WithIVMask every AEAD SA draws its own mask
// (two SAs with the same key send different IVs from the first packet);
// CBC and NULL have none (CBC IVs stay random, TestCBCIVsUnique).
func TestIVMaskDrawnPerSA(t *testing.T) {
	for _, s := range aeadSuites {
		c := saCase{suite: s, mode: ipsec.ModeTunnel}
		a, b := c.pair(t)
		if a.IVMask() == b.IVMask() {
			t.Fatalf("%s: two SAs drew the same mask %x", s.name, a.IVMask())
		}
		pa, pb := mustEncap(t, a), mustEncap(t, b)
		if pa.seq != 1 || pb.seq != 1 || string(pa.iv) == string(pb.iv) {
			t.Fatalf("%s: same key, same sequence number 1, ivs %x and %x", s.name, pa.iv, pb.iv)
		}
	}
	for _, s := range suites[4:] {
		sa, err := New(saCase{suite: s, mode: ipsec.ModeTunnel}.params(), WithIVMask(42))
		if err != nil {
			t.Fatal(err)
		}
		if sa.IVMask() != 0 {
			t.Fatalf("%s: mask %x on a suite without a counter IV", s.name, sa.IVMask())
		}
	}
}

// TestIVsUniqueAcrossLives simulates restarts of one outbound SA with the
// same key. Each life sends until its ceiling. With the state carried over
// (next life: counter from the previous ceiling, same mask), no IV and no
// sequence number repeats over all lives. With the state lost (counter from
// 0, no mask given) the new life draws a new mask: its sequence numbers
// repeat the old ones, its IVs do not.
func TestIVsUniqueAcrossLives(t *testing.T) {
	const perLife, lives = 3000, 4
	for _, s := range aeadSuites {
		c := saCase{suite: s, mode: ipsec.ModeTunnel, esn: true, window: 64}
		ivs := map[string]int{}
		seqs := map[uint32]int{}
		var mask, last uint64
		for life := range lives {
			p := c.params()
			p.Seq = last // the previous life's ceiling: nothing above it was ever sent
			opts := []Option{WithCeiling(last + perLife)}
			if life > 0 {
				opts = append(opts, WithIVMask(mask))
			}
			sa, err := New(p, opts...)
			if err != nil {
				t.Fatal(err)
			}
			mask = sa.IVMask()
			for i := 0; ; i++ {
				pk, err := encapOne(t, sa)
				if errors.Is(err, ErrSeqUnreserved) {
					break
				}
				if i == perLife {
					t.Fatalf("%s: life %d sends beyond its ceiling", s.name, life)
				}
				if err != nil {
					t.Fatal(err)
				}
				if l, dup := ivs[string(pk.iv)]; dup {
					t.Fatalf("%s: life %d repeats an iv of life %d", s.name, life, l)
				}
				if l, dup := seqs[pk.seq]; dup {
					t.Fatalf("%s: life %d repeats sequence number %d of life %d", s.name, life, pk.seq, l)
				}
				ivs[string(pk.iv)], seqs[pk.seq] = life, life
			}
			last = sa.Ceiling()
		}
		if len(ivs) != perLife*lives {
			t.Fatalf("%s: %d packets over %d lives, want %d", s.name, len(ivs), lives, perLife*lives)
		}

		// State lost: same key, counter from 0, a fresh mask.
		lost, err := New(c.params())
		if err != nil {
			t.Fatal(err)
		}
		if lost.IVMask() == mask {
			t.Fatalf("%s: the life without state reused the mask", s.name)
		}
		reusedSeq := 0
		for range perLife {
			pk := mustEncap(t, lost)
			if _, dup := ivs[string(pk.iv)]; dup {
				t.Fatalf("%s: the life without state repeats an iv", s.name)
			}
			if _, dup := seqs[pk.seq]; dup {
				reusedSeq++
			}
		}
		if reusedSeq != perLife {
			t.Fatalf("%s: %d of %d sequence numbers repeated: the test does not restart the counter", s.name, reusedSeq, perLife)
		}
	}
}

// TestCeiling: Encap sends up to the ceiling, then refuses with
// ErrSeqUnreserved without taking a number, and continues without a gap once
// the ceiling is raised; a lower ceiling is ignored; exhaustion still comes
// first at the sequence limit.
func TestCeiling(t *testing.T) {
	c := saCase{suite: suites[0], mode: ipsec.ModeTunnel, window: 64, initSeq: 5}
	p := c.params()
	sa, err := New(p, WithCeiling(10))
	if err != nil {
		t.Fatal(err)
	}
	for want := uint32(6); want <= 10; want++ {
		if pk := mustEncap(t, sa); pk.seq != want {
			t.Fatalf("seq %d, want %d", pk.seq, want)
		}
	}
	for range 3 {
		if _, err := encapOne(t, sa); err != ErrSeqUnreserved {
			t.Fatalf("beyond the ceiling: %v", err)
		}
	}
	if r, _ := ReasonOf(ErrSeqUnreserved); r.String() != "seq_unreserved" || r != NumReasons-1 {
		t.Fatalf("reason %d %q: must be appended last", r, r)
	}
	if sa.NextSeq() != 11 || sa.Counters().Errors[ReasonSeqUnreserved] != 3 || sa.Counters().OutPackets != 5 {
		t.Fatalf("next %d, counters %+v", sa.NextSeq(), sa.Counters())
	}
	sa.RaiseCeiling(7) // lower: ignored
	if sa.Ceiling() != 10 {
		t.Fatalf("ceiling moved down to %d", sa.Ceiling())
	}
	sa.RaiseCeiling(12)
	if a, b := mustEncap(t, sa), mustEncap(t, sa); a.seq != 11 || b.seq != 12 {
		t.Fatalf("after the raise: %d %d, want 11 12", a.seq, b.seq)
	}
	if _, err := encapOne(t, sa); err != ErrSeqUnreserved {
		t.Fatalf("beyond the raised ceiling: %v", err)
	}

	// Ceiling 0: nothing may be sent (a reservation not yet on disk).
	zero, err := New(c.params(), WithCeiling(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := encapOne(t, zero); err != ErrSeqUnreserved || zero.NextSeq() != 6 {
		t.Fatalf("ceiling 0: %v next %d", err, zero.NextSeq())
	}

	// Exhaustion wins at the limit, whatever the ceiling.
	p.Seq = 1<<32 - 2
	ex, err := New(p, WithCeiling(math.MaxUint64-1))
	if err != nil {
		t.Fatal(err)
	}
	mustEncap(t, ex)
	if _, err := encapOne(t, ex); err != ErrSeqExhausted {
		t.Fatalf("at the limit: %v", err)
	}
	if def, _ := c.pair(t); def.Ceiling() != NoCeiling {
		t.Fatalf("default ceiling %d", def.Ceiling())
	}
}

// TestCeilingConcurrent runs several goroutines Encapping on one SA while
// the ceiling is raised in steps (run with -race). Each step starts only
// after every goroutine was refused at the current ceiling, so the numbers
// sent in step k must be exactly (ceiling k-1, ceiling k]: none above the
// ceiling, none skipped, none twice.
func TestCeilingConcurrent(t *testing.T) {
	const workers = 4
	ceilings := []uint64{0, 1, 500, 501, 3000, 3001, 10000}
	if testing.Short() {
		ceilings = ceilings[:5]
	}
	sa, err := New(saCase{suite: suites[2], mode: ipsec.ModeTunnel, esn: true, window: 64}.params(), WithCeiling(0))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var stop atomic.Bool
	stepSeqs := map[uint32]bool{}
	refused := make(chan struct{}, workers)
	next := make([]chan struct{}, workers)
	var wg sync.WaitGroup
	for w := range workers {
		next[w] = make(chan struct{})
		wg.Go(func() {
			for sentNow := 0; ; sentNow++ {
				pk, err := encapOne(t, sa)
				// sentNow counts this worker's refusals too, one per step: one worker may send every
				// number (a busy machine schedules the others late) and still stay within the bound.
				if sentNow > int(ceilings[len(ceilings)-1])+len(ceilings) {
					t.Error("sending beyond every ceiling")
					err = ErrSeqUnreserved
				}
				switch {
				case err == nil:
					mu.Lock()
					if stepSeqs[pk.seq] {
						t.Errorf("sequence number %d sent twice", pk.seq)
					}
					stepSeqs[pk.seq] = true
					mu.Unlock()
					continue
				case err != ErrSeqUnreserved:
					t.Error(err)
				}
				refused <- struct{}{}
				<-next[w]
				if stop.Load() {
					return
				}
			}
		})
	}
	for i, c := range ceilings {
		for range workers {
			<-refused
		}
		mu.Lock()
		lo := uint64(0)
		if i > 0 {
			lo = ceilings[i-1]
		}
		if uint64(len(stepSeqs)) != c-lo {
			t.Fatalf("step %d: %d numbers sent, want %d", i, len(stepSeqs), c-lo)
		}
		for s := range stepSeqs {
			if uint64(s) <= lo || uint64(s) > c {
				t.Fatalf("step %d: number %d outside (%d, %d]", i, s, lo, c)
			}
		}
		clear(stepSeqs)
		mu.Unlock()
		if i+1 < len(ceilings) {
			sa.RaiseCeiling(ceilings[i+1])
		} else {
			stop.Store(true)
		}
		for w := range workers {
			next[w] <- struct{}{}
		}
	}
	wg.Wait()
	if sa.NextSeq() != ceilings[len(ceilings)-1]+1 {
		t.Fatalf("next %d", sa.NextSeq())
	}
}

// TestInboundRestore: an inbound SA created with Params.Seq = N (the
// persisted high-water mark) refuses every number at or below N — inside the
// window and left of it — and accepts N+1, with and without ESN (N in the
// second high-half epoch, where the receiver infers the high half from N).
func TestInboundRestore(t *testing.T) {
	for _, esn := range []bool{false, true} {
		n := uint64(1000)
		if esn {
			n = 1<<32 + 1000
		}
		c := saCase{suite: suites[0], mode: ipsec.ModeTunnel, esn: esn, window: 64}
		var wires [][]byte // wires[i] carries seq n-150+i
		p := c.params()
		p.Seq = n - 151
		out := mustNew(t, p)
		for range 152 {
			wires = append(wires, mustEncap(t, out).wire)
		}
		p.Seq = n
		in, err := New(p)
		if err != nil {
			t.Fatal(err)
		}
		if in.ReplayTop() != n {
			t.Fatalf("esn=%v: restored top %d", esn, in.ReplayTop())
		}
		for i, w := range wires[:151] {
			err := decapWire(in, w)
			// With ESN a number further left than the window is taken for
			// the next high-half epoch (RFC 4303 Appendix A) and fails the
			// ICV instead: dropped all the same.
			leftOfWindow := i < 151-64
			if err != ErrReplay && !(esn && leftOfWindow && err == ErrICV) {
				t.Fatalf("esn=%v: seq %d after a restore at %d: %v", esn, n-150+uint64(i), n, err)
			}
		}
		if err := decapWire(in, wires[151]); err != nil {
			t.Fatalf("esn=%v: seq n+1: %v", esn, err)
		}
		if err := decapWire(in, wires[151]); err != ErrReplay {
			t.Fatalf("esn=%v: n+1 again: %v", esn, err)
		}
		if in.ReplayTop() != n+1 {
			t.Fatalf("esn=%v: top %d", esn, in.ReplayTop())
		}
	}
}

// TestContinue: an SA continued with new non-key parameters shares the
// counter, the ceiling, the IV mask and the replay state with the one it
// continues, also while both are used, and keeps working after the old one
// is wiped.
func TestContinue(t *testing.T) {
	for _, s := range []suiteCase{suites[0], suites[2], suites[3], suites[4], suites[6]} {
		c := saCase{suite: s, mode: ipsec.ModeTunnel, window: 64}
		p := c.params()
		old, err := New(p, WithCeiling(20))
		if err != nil {
			t.Fatal(err)
		}
		oldIn, err := New(p)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			mustEncap(t, old)
		}
		q := p
		q.TTL, q.DF, q.TFCPadTo, q.Seq = 9, DFSet, 120, 0
		q.Src = netip.MustParseAddr("198.18.7.7")
		q.UDPEncap = &UDPEncap{SrcPort: 4500, DstPort: 4501}
		q.ReplayWindow = 32
		q.ESN = true
		q.AEAD.Name, q.Enc.Name = strings.ToUpper(q.AEAD.Name), strings.ToUpper(q.Enc.Name) // an alias of the same suite
		nu, err := Continue(old, q)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if nu.IVMask() != old.IVMask() || nu.Ceiling() != 20 || nu.NextSeq() != 6 {
			t.Fatalf("%s: mask %x/%x ceiling %d next %d", s.name, nu.IVMask(), old.IVMask(), nu.Ceiling(), nu.NextSeq())
		}
		// Both in use: one counter.
		seen := map[uint32]bool{}
		for i := range 10 {
			sa := old
			if i%2 == 1 {
				sa = nu
			}
			pk := mustEncap(t, sa)
			if seen[pk.seq] || pk.seq < 6 {
				t.Fatalf("%s: number %d twice or reused", s.name, pk.seq)
			}
			seen[pk.seq] = true
		}
		pk := mustEncap(t, nu)
		if pk.seq != 16 || pk.wire[9] != protoUDP || pk.wire[8] != 9 {
			t.Fatalf("%s: seq %d proto %d ttl %d: new parameters not in use", s.name, pk.seq, pk.wire[9], pk.wire[8])
		}
		nu.RaiseCeiling(30)
		if old.Ceiling() != 30 {
			t.Fatalf("%s: the ceiling is not shared", s.name)
		}
		old.Wipe()
		if _, err := Continue(old, q); !errors.Is(err, ErrWiped) {
			t.Fatalf("%s: continue a wiped sa: %v", s.name, err)
		}
		if _, err := encapOne(t, nu); err != nil {
			t.Fatalf("%s: after wiping the old sa: %v", s.name, err)
		}

		// Inbound: the continuation refuses what the old SA accepted.
		src := mustNew(t, p)
		var ws [][]byte
		for range 4 {
			ws = append(ws, mustEncap(t, src).wire)
		}
		if decapWire(oldIn, ws[0]) != nil || decapWire(oldIn, ws[2]) != nil {
			t.Fatalf("%s: inbound", s.name)
		}
		r := p
		r.ReplayWindow = 128 // a 64-packet window's ring holds 64 at most
		if _, err := Continue(oldIn, r); !errors.Is(err, ErrNotContinuable) {
			t.Fatalf("%s: grow 64 → 128: %v", s.name, err)
		}
		r.ReplayWindow = 32
		nin, err := Continue(oldIn, r)
		if err != nil {
			t.Fatal(err)
		}
		if decapWire(nin, ws[2]) != ErrReplay || decapWire(nin, ws[0]) != ErrReplay || decapWire(nin, ws[1]) != nil {
			t.Fatalf("%s: the continuation does not share the replay state", s.name)
		}
		if decapWire(oldIn, ws[1]) != ErrReplay || decapWire(oldIn, ws[3]) != nil || nin.ReplayTop() != 4 {
			t.Fatalf("%s: the old inbound sa does not see the continuation's numbers", s.name)
		}
	}
}

func mustNew(t testing.TB, p Params, opts ...Option) *SA {
	t.Helper()
	sa, err := New(p, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

// TestContinueRefuses: everything that identifies the SA or its key is
// refused, naming the field and never printing key bytes.
func TestContinueRefuses(t *testing.T) {
	gcm := saCase{suite: suites[0], mode: ipsec.ModeTunnel, window: 64}.params()
	etm := saCase{suite: suites[4], mode: ipsec.ModeTunnel, window: 64}.params()
	flip := func(k []byte, i int) []byte {
		k = append([]byte(nil), k...)
		k[i] ^= 1
		return k
	}
	cases := []struct {
		name, field string
		base        Params
		change      func(p *Params)
	}{
		{"spi", "spi", gcm, func(p *Params) { p.SPI++ }},
		{"dst", "dst", gcm, func(p *Params) { p.Dst = netip.MustParseAddr("198.19.9.9") }},
		{"algorithm", "algorithm", gcm, func(p *Params) { p.AEAD.Name = AlgGMAC }},
		{"icv length", "algorithm", gcm, func(p *Params) { p.AEAD.ICVBits = 96 }},
		{"aes key", "key", gcm, func(p *Params) { p.AEAD.Key = flip(p.AEAD.Key, 0) }},
		{"salt", "key", gcm, func(p *Params) { p.AEAD.Key = flip(p.AEAD.Key, 19) }},
		{"key length", "key", gcm, func(p *Params) { p.AEAD.Name, p.AEAD.Key = AlgGCM, testKey(36, 1) }},
		{"cbc key", "key", etm, func(p *Params) { p.Enc.Key = flip(p.Enc.Key, 3) }},
		{"auth key", "key", etm, func(p *Params) { p.Auth.Key = flip(p.Auth.Key, 31) }},
		{"window off", "replay_window", gcm, func(p *Params) { p.ReplayWindow = 0 }},
		{"window beyond capacity", "replay_window", gcm, func(p *Params) { p.ReplayWindow = 65 }},
	}
	for _, c := range cases {
		prev := mustNew(t, c.base)
		p := c.base
		c.change(&p)
		_, err := Continue(prev, p)
		var fe *FieldError
		if !errors.Is(err, ErrNotContinuable) || !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: %v, want a %q field error", c.name, err, c.field)
			continue
		}
		for _, k := range [][]byte{c.base.AEAD.Key, c.base.Enc.Key, c.base.Auth.Key, p.AEAD.Key, p.Enc.Key, p.Auth.Key} {
			if len(k) > 0 && strings.Contains(strings.ToLower(err.Error()), hex.EncodeToString(k[:4])) {
				t.Errorf("%s: error shows key bytes: %v", c.name, err)
			}
		}
	}
	// ESN off once the numbers passed 32 bits; on → off below is fine.
	esn := gcm
	esn.ESN, esn.Seq = true, 1<<32+5
	noESN := gcm
	if _, err := Continue(mustNew(t, esn), noESN); !errors.Is(err, ErrNotContinuable) {
		t.Errorf("esn off above 2^32: %v", err)
	}
	esn.Seq = 7
	if _, err := Continue(mustNew(t, esn), noESN); err != nil {
		t.Errorf("esn off below 2^32: %v", err)
	}
	// Invalid parameters are refused as New refuses them.
	bad := gcm
	bad.ReplayWindow = 3
	if _, err := Continue(mustNew(t, gcm), bad); err == nil || errors.Is(err, ErrNotContinuable) {
		t.Errorf("invalid window: %v", err)
	}
}

// TestFingerprint: the fingerprint depends on the secret, the key, the salt
// and the nonce family, not on the spelling of the algorithm, the ICV length,
// the SPI or anything else; it does not contain the key.
func TestFingerprint(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	base := saCase{suite: suites[0], mode: ipsec.ModeTunnel, window: 64}.params()
	fp := func(p Params, sec []byte) [FingerprintLen]byte {
		f, err := Fingerprint(p, sec)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	ref := fp(base, secret)
	same := []func(p *Params){
		func(p *Params) { p.AEAD.Name = AlgGCM },
		func(p *Params) { p.AEAD.Name = AlgGMAC }, // same AES-GCM nonces
		func(p *Params) { p.AEAD.ICVBits = 96 },
		func(p *Params) { p.SPI, p.Seq, p.TTL, p.ESN, p.ReplayWindow = 0x9999, 5, 3, true, 0 },
	}
	for i, f := range same {
		p := base
		f(&p)
		if fp(p, secret) != ref {
			t.Errorf("change %d moved the fingerprint", i)
		}
	}
	other := []func(p *Params){
		func(p *Params) { p.AEAD.Key = append([]byte{p.AEAD.Key[0] ^ 1}, p.AEAD.Key[1:]...) },
		func(p *Params) { k := append([]byte(nil), p.AEAD.Key...); k[19] ^= 1; p.AEAD.Key = k },
		func(p *Params) {
			p.AEAD = AEADAlg{}
			p.Enc, p.Auth = EncAlg{Name: AlgCBC, Key: base.AEAD.Key[:16]}, AuthAlg{Name: AlgHMAC256, Key: testKey(32, 1)}
		},
	}
	for i, f := range other {
		p := base
		f(&p)
		if fp(p, secret) == ref {
			t.Errorf("change %d kept the fingerprint", i)
		}
	}
	if fp(base, []byte("another secret")) == ref {
		t.Error("the fingerprint does not depend on the secret")
	}
	if strings.Contains(string(ref[:]), string(base.AEAD.Key[:4])) {
		t.Error("the fingerprint shows key bytes")
	}
	bad := base
	bad.AEAD.Key = bad.AEAD.Key[:5]
	if _, err := Fingerprint(bad, secret); err == nil {
		t.Error("invalid parameters fingerprinted")
	}
}

// TestMigrate: an SA that moves to a new destination (and source, and encapsulation) keeps its
// counter and IV mask outbound and its replay window inbound; another address family is refused.
func TestMigrate(t *testing.T) {
	p := saCase{suite: suites[0], mode: ipsec.ModeTunnel, window: 64}.params()
	out := mustNew(t, p)
	in := mustNew(t, p)
	src := mustNew(t, p)
	var ws [][]byte
	for range 3 {
		ws = append(ws, mustEncap(t, src).wire)
	}
	if decapWire(in, ws[0]) != nil || decapWire(in, ws[2]) != nil {
		t.Fatal("inbound before the move")
	}
	for range 4 {
		mustEncap(t, out)
	}
	q := p
	q.Src, q.Dst = netip.MustParseAddr("198.18.7.7"), netip.MustParseAddr("198.19.9.9")
	q.UDPEncap = &UDPEncap{SrcPort: 62000, DstPort: 4500}
	moved, err := Migrate(out, q)
	if err != nil {
		t.Fatal(err)
	}
	pk := mustEncap(t, moved)
	if pk.seq != 5 || moved.IVMask() != out.IVMask() {
		t.Fatalf("moved sa sent seq %d (want 5), mask %x/%x", pk.seq, moved.IVMask(), out.IVMask())
	}
	// The outer header carries the new addresses, in UDP, with their checksum.
	if got := netip.AddrFrom4([4]byte(pk.wire[16:20])); got != q.Dst || pk.wire[9] != protoUDP {
		t.Fatalf("outer dst %s proto %d", got, pk.wire[9])
	}
	if got := netip.AddrFrom4([4]byte(pk.wire[12:16])); got != q.Src || inetsum.Checksum(pk.wire[:20]) != 0 {
		t.Fatalf("outer src %s, header checksum %#04x does not verify", got, be.Uint16(pk.wire[10:]))
	}
	if s, d := moved.addrs(); s != q.Src || d != q.Dst {
		t.Fatalf("moved sa's addresses %s %s", s, d)
	}
	qin := q
	qin.UDPEncap = nil // the test's packets are plain ESP
	movedIn, err := Migrate(in, qin)
	if err != nil {
		t.Fatal(err)
	}
	if decapWire(movedIn, ws[2]) != ErrReplay || decapWire(movedIn, ws[1]) != nil || decapWire(in, ws[1]) != ErrReplay {
		t.Fatal("the moved inbound sa does not share the replay window")
	}
	q.Src, q.Dst = netip.MustParseAddr("2001:2::1"), netip.MustParseAddr("2001:2::2")
	if _, err := Migrate(out, q); !errors.Is(err, ErrNotContinuable) {
		t.Fatalf("to another family: %v", err)
	}
	q.Src, q.Dst = p.Src, p.Dst
	q.SPI++
	if _, err := Migrate(out, q); !errors.Is(err, ErrNotContinuable) {
		t.Fatalf("another spi: %v", err)
	}
}

// TestOutCounters checks that the outbound counts, which come from the
// sequence counter, are exact for an SA on its own (a refused call counts
// nothing), and that SAs sharing the counter (Continue) each count from the
// moment they were made.
func TestOutCounters(t *testing.T) {
	p := saCase{suite: suites[0], mode: ipsec.ModeTunnel, initSeq: 100}.params()
	sa := mustNew(t, p, WithCeiling(105))
	check := func(what string, s *SA, pkts uint64) {
		t.Helper()
		// encapOne sends 100-byte inner packets.
		if c := s.Counters(); c.OutPackets != pkts || c.OutBytes != 100*pkts {
			t.Fatalf("%s: %d packets, %d bytes; want %d, %d", what, c.OutPackets, c.OutBytes, pkts, 100*pkts)
		}
	}
	check("new", sa, 0)
	for range 3 {
		mustEncap(t, sa)
	}
	check("after 3", sa, 3)
	next, err := Continue(sa, p)
	if err != nil {
		t.Fatal(err)
	}
	check("continued", next, 0)
	mustEncap(t, next)
	mustEncap(t, sa)
	check("old after 2 more", sa, 5)
	check("new after 2 more", next, 2)
	if _, err := encapOne(t, next); err != ErrSeqUnreserved {
		t.Fatalf("beyond the ceiling: %v", err)
	}
	check("old after a refusal", sa, 5)
	check("new after a refusal", next, 2)
}
