// Package xsk is xdpsec's AF_XDP library, written on golang.org/x/sys/unix:
// a UMEM, sockets with their four rings over mmap, a free-frame pool, and a
// poller with a stop eventfd. The crypto workers (crypto/worker) move every
// packet through it.
//
// # Objects
//
//   - UMEM: one anonymous mapping cut into equal frames (default 65,536 × 2 KiB;
//     PERF-NOTES found smaller UMEMs lose packets on this shared machine).
//     The first socket opened on it registers it (XDP_UMEM_REG); every later
//     socket binds with XDP_SHARED_UMEM to that one, so a frame received on the
//     protected-side interface is encrypted in place and transmitted on the
//     wire-side interface without a copy. Since Linux 5.10 a shared socket on
//     another device or queue has fill and completion rings of its own, and
//     Open always creates them: every socket of a UMEM must be bound to a
//     distinct (interface, queue).
//   - Socket: an AF_XDP socket bound to one interface queue, with its Fill,
//     Completion, RX and TX rings. Mode reports what the kernel granted:
//     ModeAuto tries XDP_ZEROCOPY and falls back to XDP_COPY (veth: copy).
//     Shared sockets inherit the first socket's mode and need-wakeup setting
//     (a kernel rule), so all sockets of a UMEM run in one mode.
//   - FramePool: a stack of free frame addresses. UMEM.Pools cuts the frames
//     into disjoint pools, one per worker, so no free list is ever shared.
//   - Stopper and Poller: poll(2) on a worker's sockets plus an eventfd that
//     any goroutine fires to wake the worker and make it return.
//   - MemKernel (NewMemSocket): a socket whose rings live in Go memory and a
//     double that plays the kernel, so that code on Socket is tested without
//     root. xsktest builds namespaces, veth pairs and XDP redirect programs
//     for the root-only tests.
//
// # Rings and ownership
//
// Each ring has one producer and one consumer: user space produces on Fill
// and TX, the kernel on RX and Completion. The shared producer and consumer
// indexes are atomic.Uint32 (acquire/release against the kernel's
// smp_load_acquire/smp_store_release); each side keeps cached copies and
// reads the other's index only when its cached view runs out. Every ring
// operation is batched: Produce and Consume move a whole slice with one
// index store. All unsafe code is in unsafe.go.
//
// A Socket and its rings, and a FramePool, belong to one goroutine. The UMEM's
// bookkeeping (Open, Close) is locked; frames themselves are owned by
// whoever holds their address, as below. Close unmaps the rings: close a
// socket only after the goroutine using it has stopped, and the UMEM after
// its sockets (UMEM.Close refuses while sockets are open).
//
// # Frame lifecycle
//
//	pool --Fill.Produce--> kernel --RX.Consume--> caller
//	caller --TX.Produce--> kernel --Completion.Consume--> pool
//	caller --FramePool.Put--> pool                (dropped packets)
//
// A received packet starts at RXOffset inside its frame (the UMEM headroom,
// default 0, plus XDP_PACKET_HEADROOM = 256). The kernel copies an XDP
// program's metadata (bpf_xdp_adjust_meta) along in copy mode too, to the
// bytes right before the packet, so the card's metadata ends at desc.Addr.
// The 256 bytes in front leave room for the largest ESP encapsulation
// (esp.Headroom = 128) in front of the metadata's place, and a 2 KiB frame
// has room for esp.Tailroom behind a 1514-byte frame. A TX descriptor may
// point anywhere inside a frame; the completion ring returns that address,
// and FramePool.Put maps any address inside a frame back to the frame.
//
// Multi-buffer (SocketConfig.SG, XDP_USE_SG, Linux 6.6+): behind an XDP
// program loaded with BPF_F_XDP_HAS_FRAGS, a packet larger than a frame's
// room (FrameSize - RXOffset) arrives as a chain of RX descriptors, each at
// RXOffset of its own frame, every one but the last full and flagged
// PktContd in Desc.Options; the program's metadata sits before the first
// only. Each descriptor is one frame for the accounting below. SG is the
// UMEM's first socket's choice, inherited by the sockets that share it
// (TestVethSG checks a 9,000-byte frame arrives so; MemKernel.ReceiveMulti
// plays it without root). On TX an SG socket takes single-descriptor
// packets as before (Options 0); the workers never send a packet larger
// than a frame (they segment), so TX chains are not used.
//
// Accounting: at any time every frame is in exactly one place — the pool,
// a fill ring (or the kernel's hands for RX), the caller's hands, or a TX
// ring (or the kernel's hands until completion). After a worker stops, every
// frame is back in its pool or on a fill ring; tests check it. Open refuses
// fill or TX rings larger than half the UMEM, so RX cannot take every frame
// and starve TX, or the other way round.
//
// # Waking the kernel
//
// With XDP_USE_NEED_WAKEUP (the default) the kernel sets a flag on a ring
// when it wants a syscall: Socket.Kick calls sendto only when the TX ring's
// flag is set (in copy mode always), and WakeRX calls recvfrom only when the
// fill ring's flag is set (zero-copy drivers). Copy-mode transmission runs
// inside sendto, by default 32 packets per call; Open raises that budget to
// the TX ring's size (XDP_MAX_TX_SKB_BUDGET, Linux 6.17+) so one kick sends a
// whole batch. BusyPoll sets SO_PREFER_BUSY_POLL, SO_BUSY_POLL and
// SO_BUSY_POLL_BUDGET.
//
// poll(2) on an AF_XDP socket wakes for received packets (POLLIN) and TX ring
// room (POLLOUT), not for completions: a worker with frames in flight polls
// with a short timeout to reap them.
package xsk
