package docauth

// #include <stdlib.h>
// #include <string.h>
// #include "include_docauth.h"
import "C"

import (
	"fmt"
	"strings"
	"unsafe"
)

// Version returns the library version (the crate's major.minor.patch).
func Version() string {
	return C.GoString(C.docauth_version())
}

// cString copies s into malloc'ed C memory. It refuses strings with a NUL byte, which C
// would silently truncate. The caller frees the result with freeCString.
func cString(what, s string) (*C.char, error) {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return nil, newGoError(ResultInvalidArgument,
			fmt.Sprintf("%s contains a NUL byte at offset %d; C strings cannot carry it", what, i), nil)
	}
	return C.CString(s), nil
}

// freeCString wipes a C string copy (it may hold a secret) and frees it. NULL is a no-op.
func freeCString(p *C.char) {
	if p == nil {
		return
	}
	C.memset(unsafe.Pointer(p), 0, C.strlen(p))
	C.free(unsafe.Pointer(p))
}

// takeBytes copies a docauth_bytes into a Go slice and frees the C buffer.
func takeBytes(b *C.docauth_bytes) []byte {
	defer C.docauth_bytes_free(b)
	n := C.docauth_bytes_len(b)
	data := C.docauth_bytes_data(b)
	out := make([]byte, int(n))
	if n > 0 && data != nil {
		copy(out, unsafe.Slice((*byte)(unsafe.Pointer(data)), int(n)))
	}
	return out
}

// emptyBuffer stands for an empty (or nil) slice: an empty Go slice is an empty buffer,
// never a NULL pointer, so C reports what is wrong with the contents, not a missing argument.
var emptyBuffer [1]byte

// bytesArg returns a pointer to b's first byte and its length for a C call. Passing a
// pointer into a []byte (memory that holds no Go pointers) as a call argument follows the
// cgo pointer rules: the C side only reads it during the call and keeps no reference.
func bytesArg(b []byte) (*C.uint8_t, C.size_t) {
	if len(b) == 0 {
		return (*C.uint8_t)(unsafe.Pointer(&emptyBuffer[0])), 0
	}
	return (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(b))), C.size_t(len(b))
}
