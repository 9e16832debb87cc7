package keymem

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// vmFlags returns the VmFlags of the mapping in /proc/self/smaps that holds p.
func vmFlags(t *testing.T, p unsafe.Pointer) []string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	inside := false
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 && strings.Contains(strings.Fields(line)[0], "-") {
			inside = uintptr(p) >= lo && uintptr(p) < hi
			continue
		}
		if inside && strings.HasPrefix(line, "VmFlags:") {
			return strings.Fields(strings.TrimPrefix(line, "VmFlags:"))
		}
	}
	t.Fatalf("no mapping in /proc/self/smaps holds %p", p)
	return nil
}

func has(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// The kernel marks the memory behind a buffer: locked, not dumped, wiped in a forked child.
func TestMemoryFlags(t *testing.T) {
	b := Alloc(36)
	defer b.Free()
	flags := vmFlags(t, unsafe.Pointer(unsafe.SliceData(b.Bytes())))
	for _, f := range []string{"dd", "wf"} { // MADV_DONTDUMP, MADV_WIPEONFORK
		if !has(flags, f) {
			t.Errorf("VmFlags %v lack %q", flags, f)
		}
	}
	st := Stats()
	switch {
	case has(flags, "lo") != b.Locked():
		t.Errorf("VmFlags %v, but Locked() = %v", flags, b.Locked())
	case os.Geteuid() == 0 && !has(flags, "lo"):
		// Root has CAP_IPC_LOCK (or the test runs under a limit that must fit one chunk).
		t.Errorf("not locked as root: VmFlags %v, %v", flags, st.LockErr)
	case !has(flags, "lo"):
		t.Logf("not locked as uid %d (RLIMIT_MEMLOCK): %v", os.Geteuid(), st.LockErr)
	}
	if st.Mapped == 0 || st.InUse < 36 {
		t.Errorf("stats %+v after a 36-byte allocation", st)
	}
}

func TestAllocFree(t *testing.T) {
	for _, n := range []int{1, 16, 17, 20, 36, 64, 65, 4096} {
		b := Alloc(n)
		got := b.Bytes()
		if len(got) != n || cap(got) != n || b.Len() != n {
			t.Fatalf("Alloc(%d): len %d cap %d", n, len(got), cap(got))
		}
		if !bytes.Equal(got, make([]byte, n)) {
			t.Fatalf("Alloc(%d) is not zeroed", n)
		}
		for i := range got {
			got[i] = 0xa5
		}
		b.Free()
		if b.Bytes() != nil || b.Len() != 0 {
			t.Fatalf("Alloc(%d): Bytes after Free = %x", n, b.Bytes())
		}
		if !bytes.Equal(got, make([]byte, n)) { // the old slice still points at the slot
			t.Fatalf("Alloc(%d): the slot was not wiped on Free: %x", n, got)
		}
	}
	var nilBuf *Buf
	nilBuf.Free()
	if nilBuf.Bytes() != nil || Alloc(0).Bytes() == nil || Alloc(0).Len() != 0 {
		t.Error("nil or empty buffers misbehave")
	}
}

// A buffer larger than MaxSize comes from the heap and is still wiped.
func TestLargeFromHeap(t *testing.T) {
	b := Alloc(MaxSize + 1)
	got := b.Bytes()
	got[0], got[MaxSize] = 1, 2
	if b.Locked() {
		t.Error("a heap buffer claims to be locked")
	}
	b.Free()
	if got[0] != 0 || got[MaxSize] != 0 {
		t.Error("a large buffer was not wiped")
	}
}

// Freeing a Buf twice must not free the slot again once it holds another key.
func TestDoubleFreeKeepsOthersKey(t *testing.T) {
	a := Alloc(32)
	slot := unsafe.SliceData(a.Bytes())
	a.Free()
	// Take slots until a's comes back (FIFO reuse: after every other free slot of the class).
	var held []*Buf
	defer func() {
		for _, h := range held {
			h.Free()
		}
	}()
	var b *Buf
	for i := 0; i < chunkSize/32+1; i++ {
		x := Alloc(32)
		if unsafe.SliceData(x.Bytes()) == slot {
			b = x
			break
		}
		held = append(held, x)
	}
	if b == nil {
		t.Fatal("the freed slot never came back")
	}
	if len(held) == 0 {
		t.Error("the freed slot came back first: reuse is not oldest first")
	}
	copy(b.Bytes(), "another SA's key material 32 by.")
	a.Free()
	if string(b.Bytes()) != "another SA's key material 32 by." {
		t.Errorf("a second Free of the old buffer touched the new owner's key: %q", b.Bytes())
	}
	b.Free()
}

func TestWipeAll(t *testing.T) {
	b := Copy([]byte("0123456789abcdef0123"))
	defer b.Free()
	WipeAll()
	if !bytes.Equal(b.Bytes(), make([]byte, 20)) {
		t.Errorf("WipeAll left %q", b.Bytes())
	}
}

func TestConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				b := Alloc(1 + (g*31+i)%100)
				p := b.Bytes()
				for j := range p {
					p[j] = byte(g)
				}
				for j := range p {
					if p[j] != byte(g) {
						t.Errorf("goroutine %d: a buffer changed under its owner", g)
						return
					}
				}
				b.Free()
			}
		})
	}
	wg.Wait()
}

// BenchmarkAllocFree is the cost of one key's life in the arena (an SA added and deleted), never
// paid per packet.
func BenchmarkAllocFree(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Alloc(36).Free()
	}
}

func TestParseHex(t *testing.T) {
	b, err := ParseHex("0X0a1B2c")
	if err != nil || !bytes.Equal(b.Bytes(), []byte{0x0a, 0x1b, 0x2c}) {
		t.Fatalf("ParseHex = %x, %v", b.Bytes(), err)
	}
	if !b.Locked() && os.Geteuid() == 0 {
		t.Error("parsed key is not in locked memory")
	}
	b.Free()
	if b, err := ParseHex("0x"); err != nil || b.Len() != 0 {
		t.Errorf("ParseHex(0x) = %v, %v; want the empty key", b.Bytes(), err)
	}
	// A key whose digits must not appear in the error: the 23rd character is a 'g'.
	const key = "0x8f3e9d2c7b1a6f5e4d3cg2b1a09f8e7d6c5b4a57"
	for _, c := range []struct {
		text string
		want string
		is   error
	}{
		{key, "character 23 is not a hex digit", nil},
		{"0x8f3e9d2c7b1a6f5e4d3c2gb1a09f8e7d6c5b4a57", "character 24 is not a hex digit", nil},
		{"8f3e9d2c7b1a6f5e4d3c2b1a09f8e7d6c5b4a57f", "want 0x", ErrNoHexPrefix},
		{key[:len(key)-1], "odd number of hex digits (39)", ErrOddHex},
	} {
		_, err := ParseHex(c.text)
		if err == nil || !strings.Contains(err.Error(), c.want) || (c.is != nil && !errors.Is(err, c.is)) {
			t.Errorf("ParseHex(%s): %v, want …%s…", c.text, err, c.want)
			continue
		}
		// No two adjacent characters of the key text are in the message (the key avoids the pairs
		// the messages themselves contain: "ac", "23", "24", "39").
		for i := 2; i+2 <= len(c.text); i++ {
			if w := c.text[i : i+2]; strings.Contains(err.Error(), w) {
				t.Errorf("ParseHex(%s): the error %q shows key characters %q", c.text, err, w)
			}
		}
	}
}
