package docauth

// The audit callbacks the library calls (session.go passes them to docauth_session_start).
// user_data is malloc'ed C memory holding a cgo.Handle's number for the session's
// *auditTarget; docauthGoAuditFree (called exactly once by the library) deletes the handle
// and frees that memory, so the Go callback lives exactly as long as the library may call it.

// #include <stdint.h>
// #include <stdlib.h>
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

//export docauthGoAudit
func docauthGoAudit(userData unsafe.Pointer, eventJSON *C.char, n C.size_t) {
	if userData == nil {
		return
	}
	target, ok := cgo.Handle(*(*C.uintptr_t)(userData)).Value().(*auditTarget)
	if !ok || target.fn == nil {
		return
	}
	event := C.GoBytes(unsafe.Pointer(eventJSON), C.int(n))
	// A panic must not unwind into the library's thread: it would abort the process.
	defer func() {
		if v := recover(); v != nil {
			target.mu.Lock()
			target.panics++
			if target.first == nil {
				target.first = v
			}
			target.mu.Unlock()
		}
	}()
	target.fn(event)
}

//export docauthGoAuditFree
func docauthGoAuditFree(userData unsafe.Pointer) {
	if userData == nil {
		return
	}
	cgo.Handle(*(*C.uintptr_t)(userData)).Delete()
	C.free(userData)
}
