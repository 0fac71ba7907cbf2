package docauth

// #include "include_docauth.h"
import "C"

import (
	"errors"
	"fmt"
)

// Result is a library result code (the C enum docauth_result). Numbers are stable.
type Result uint32

// String returns the code's C constant name, e.g. "DOCAUTH_RESULT_SASL_HOST_LENGTH".
func (r Result) String() string {
	if name, ok := resultNames[r]; ok {
		return name
	}
	return C.GoString(C.docauth_result_name(C.uint32_t(r)))
}

// Error is the error every failing call of this package returns.
type Error struct {
	// Code is the library's result code.
	Code Result
	// Name is the code's C constant name, e.g. "DOCAUTH_RESULT_SASL_SERVER_NONCE_LENGTH".
	Name string
	// Message says what went wrong, for a human operator. It never contains a secret.
	Message string

	cause error // a Go-side cause such as ErrClosed, reachable through errors.Is/As
}

// ErrClosed is matched (errors.Is) by the error any object owning a C handle returns
// when it is used after Close. That error also matches ErrInvalidState.
var ErrClosed = errors.New("docauth: object used after Close")

func (e *Error) Error() string {
	return fmt.Sprintf("docauth: %s: %s", e.Name, e.Message)
}

// Is reports whether target is a *Error with the same Code; this is what makes
// errors.Is(err, docauth.ErrSaslHostLength) work.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && t.Code == e.Code
}

// Unwrap returns the Go-side cause, if any (e.g. ErrClosed).
func (e *Error) Unwrap() error { return e.cause }

func newGoError(code Result, message string, cause error) *Error {
	return &Error{Code: code, Name: code.String(), Message: message, cause: cause}
}

func closedError(what string) *Error {
	return newGoError(ResultInvalidState, what+" used after Close", ErrClosed)
}

// takeError turns a C result and its optional error object into a Go error, freeing the
// error object. It returns nil for DOCAUTH_RESULT_OK.
func takeError(rc C.enum_docauth_result, cerr *C.docauth_error) error {
	if rc == C.DOCAUTH_RESULT_OK {
		if cerr != nil { // out-params are written only on failure; be defensive anyway
			C.docauth_error_free(cerr)
		}
		return nil
	}
	code := Result(rc)
	message := "(no message)"
	if cerr != nil {
		code = Result(C.docauth_error_code(cerr))
		message = C.GoString(C.docauth_error_message(cerr))
		C.docauth_error_free(cerr)
	}
	return &Error{Code: code, Name: code.String(), Message: message}
}

// cResultName asks the library for a code's name (used by tests to cross-check).
func cResultName(r Result) string {
	return C.GoString(C.docauth_result_name(C.uint32_t(r)))
}
