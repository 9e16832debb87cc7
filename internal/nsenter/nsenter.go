// Package nsenter runs code inside a network namespace the one safe way in Go: on a goroutine of its
// own that locks its OS thread, enters the namespace, runs, and returns the thread to where it came
// from. A thread that cannot return is left locked, so the runtime ends it with its goroutine instead
// of handing a thread in the wrong namespace to other code. Sockets and links the code creates stay in
// the namespace; the goroutines that use them later may run anywhere.
//
// The daemon (interfaces in a namespace), the testbed and the AF_XDP tests' namespaces all enter
// namespaces through it.
package nsenter

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Run runs fn in namespace ns and returns fn's error, or why the thread could not enter or return.
// With no namespace (a handle of 0 or -1) fn runs where the caller is.
func Run(ns netns.NsHandle, fn func() error) error {
	if ns <= 0 {
		return fn()
	}
	return locked(func() error {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("enter namespace: %w", err)
		}
		return fn()
	})
}

// Create makes a new named network namespace (as `ip netns add` does, under /run/netns) and returns a
// handle to it; the caller stays where it is.
func Create(name string) (netns.NsHandle, error) {
	var h netns.NsHandle
	err := locked(func() error {
		var err error
		h, err = netns.NewNamed(name) // moves this thread into it
		if err != nil {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
		return nil
	})
	return h, err
}

// locked runs fn on a new goroutine locked to its thread, then moves the thread back to the namespace
// it started in.
func locked(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("read current namespace: %w", err)
			return
		}
		defer orig.Close()
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Left locked: the runtime terminates the thread when this goroutine ends.
			errc <- fmt.Errorf("return from namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
