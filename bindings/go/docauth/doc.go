// Package docauth is the Go binding of libdocauth, the security core of a MongoDB /
// Amazon DocumentDB access proxy (MONGODB-AWS SASL signing today).
//
// Building: by default the package uses an installed libdocauth found by pkg-config
// (`make install`, then PKG_CONFIG_PATH=<prefix>/lib/pkgconfig if the prefix is not a system
// one); `-tags docauth_static` links libdocauth.a with CGO_CFLAGS/CGO_LDFLAGS naming the
// header and library directories. See link_pkgconfig.go, link_static.go and the README.
//
// Errors: every failing call returns a *Error carrying the library's result code, the
// code's C name and a message. Compare with errors.Is against the sentinels, one per
// result code (generated from include/docauth.h):
//
//	if errors.Is(err, docauth.ErrSaslServerNonceMismatch) { ... }
//
// Resources: Credentials, AwsConversation, Engine, CredentialsProvider, Runtime and Session
// own C objects. Call Close when done; Close is idempotent, and a finalizer frees objects
// that were never closed. Using an object after
// Close returns an error matching ErrClosed and ErrInvalidState; it never crashes.
//
// Concurrency: a *Credentials may be shared by any number of goroutines. An
// *AwsConversation is a single conversation; its methods are serialized by a mutex, so
// concurrent calls are safe but pointless.
//
// Secrets: the secret access key and session token are copied into C memory that the
// binding wipes after the call; the library keeps its own zeroized copy. No error message
// or String() output contains a secret.
package docauth

//go:generate go run ../internal/gencodes -header ../../../include/docauth.h -out codes_gen.go
