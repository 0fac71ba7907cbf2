package docauth

import (
	"runtime"
	"sync"
)

// handle owns one C object for a Go type that wraps it: calls take the read lock (or the
// write lock, for C objects that are single-threaded), Close takes the write lock and frees
// the object once, and a finalizer frees an object that was never closed. A call after
// Close returns an error matching ErrClosed, never a crash.
//
// The finalizer sits on the handle, which only its wrapper references: when the wrapper
// becomes unreachable so does the handle. use keeps the handle alive until the C call
// returns, so a wrapper dropped during a call is not freed under it.
//
// P is the C pointer type (the C structs are opaque, so cgo's incomplete types cannot be
// type arguments themselves; pointers to them can).
type handle[P comparable] struct {
	mu   sync.RWMutex // readers: calls using ptr; writer: close
	ptr  P            // the zero value (NULL) once freed
	free func(P)
	what string // the Go type's name, for errors
}

func newHandle[P comparable](ptr P, free func(P), what string) *handle[P] {
	h := &handle[P]{ptr: ptr, free: free, what: what}
	runtime.SetFinalizer(h, (*handle[P]).release)
	return h
}

// use runs f with the C pointer under the read lock: concurrent calls run in parallel,
// Close waits for them.
func (h *handle[P]) use(f func(P) error) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.call(f)
}

// useExclusive runs f under the write lock, for C objects that must not be called from
// two threads at once.
func (h *handle[P]) useExclusive(f func(P) error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.call(f)
}

func (h *handle[P]) call(f func(P) error) error {
	var null P
	if h.ptr == null {
		return closedError(h.what)
	}
	err := f(h.ptr)
	runtime.KeepAlive(h)
	return err
}

// close frees the C object; idempotent, waits for calls in progress, always returns nil.
func (h *handle[P]) close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.release()
	runtime.SetFinalizer(h, nil)
	return nil
}

// release frees the C object if it is still held; the finalizer calls it without the lock
// (no other goroutine can reach an unreachable handle).
func (h *handle[P]) release() {
	var null P
	if h.ptr != null {
		h.free(h.ptr)
		h.ptr = null
	}
}
