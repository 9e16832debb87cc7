package loader

import "errors"

// Sentinel errors callers test with errors.Is.
var (
	ErrNotRoot         = errors.New("not permitted: loading the card needs root (CAP_BPF, CAP_NET_ADMIN)")
	ErrNoInterface     = errors.New("no such interface")
	ErrXDPBusy         = errors.New("another XDP program is attached")
	ErrVerifier        = errors.New("verifier rejected the card")
	ErrKernelTooOld    = errors.New("kernel too old")
	ErrNotBPFFS        = errors.New("not a bpffs mount")
	ErrIncompatiblePin = errors.New("pinned card incompatible with this build or configuration")
	ErrCapacity        = errors.New("index beyond the card's capacity")
	ErrInvalid         = errors.New("invalid argument")
	ErrSAExists        = errors.New("an SA with this SPI, destination and protocol is already offloaded")
	ErrNotFound        = errors.New("not found")
	ErrClosed          = errors.New("card closed")
	ErrInstanceBusy    = errors.New("instance in use by another process")
	ErrUnsafePinDir    = errors.New("unsafe pin directory")
)
