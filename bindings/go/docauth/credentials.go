package docauth

// #include <stdlib.h>
// #include "include_docauth.h"
import "C"

import (
	"fmt"
	"time"
)

// Credentials are AWS credentials (access key id, secret access key, optional session
// token) held by the library in zeroizing memory.
//
// A *Credentials is immutable and may be shared by any number of goroutines. Close frees
// it; conversations already created keep their own reference and stay usable.
type Credentials struct {
	h           *handle[*C.docauth_credentials]
	accessKeyID string
	temporary   bool
	expiry      time.Time // zero: no expiry
}

// wrapCredentials owns a handle the library returned, reading back its access key id and
// expiry (the secret and the token cannot be read back).
func wrapCredentials(ptr *C.docauth_credentials, temporary bool) *Credentials {
	c := &Credentials{
		h:           newHandle(ptr, func(p *C.docauth_credentials) { C.docauth_credentials_free(p) }, "Credentials"),
		accessKeyID: C.GoString(C.docauth_credentials_access_key_id(ptr)),
		temporary:   temporary,
	}
	if secs := int64(C.docauth_credentials_expiry(ptr)); secs > 0 {
		c.expiry = time.Unix(secs, 0).UTC()
	}
	return c
}

// NewCredentials copies the credentials into the library. An empty sessionToken means
// long-term (IAM user) credentials; a non-empty one means temporary credentials (e.g.
// from AssumeRole). Empty access key id or secret returns ErrAwsInvalidCredentials;
// a string with a NUL byte returns ErrInvalidArgument; invalid UTF-8 ErrInvalidUtf8.
func NewCredentials(accessKeyID, secretAccessKey, sessionToken string) (*Credentials, error) {
	cAkid, err := cString("access key id", accessKeyID)
	if err != nil {
		return nil, err
	}
	defer freeCString(cAkid)
	cSecret, err := cString("secret access key", secretAccessKey)
	if err != nil {
		return nil, err
	}
	defer freeCString(cSecret)
	var cToken *C.char // NULL: long-term credentials
	if sessionToken != "" {
		if cToken, err = cString("session token", sessionToken); err != nil {
			return nil, err
		}
		defer freeCString(cToken)
	}

	var out *C.docauth_credentials
	var cerr *C.docauth_error
	rc := C.docauth_credentials_new(cAkid, cSecret, cToken, &out, &cerr)
	if err := takeError(rc, cerr); err != nil {
		return nil, err
	}
	return wrapCredentials(out, sessionToken != ""), nil
}

// AccessKeyID returns the access key id (not a secret): AKIA... for long-term keys, ASIA...
// for the temporary credentials of an assumed role (CredentialsProvider.Resolve).
func (c *Credentials) AccessKeyID() string { return c.accessKeyID }

// Expiry returns when temporary credentials from CredentialsProvider.Resolve expire (STS's
// Expiration, whole seconds, UTC) and true; the zero time and false when they have none
// (credentials from NewCredentials).
func (c *Credentials) Expiry() (time.Time, bool) { return c.expiry, !c.expiry.IsZero() }

// Temporary reports whether the credentials carry a session token.
func (c *Credentials) Temporary() bool { return c.temporary }

// String describes the credentials without any secret.
func (c *Credentials) String() string {
	kind := "long-term"
	if c.temporary {
		kind = "temporary"
	}
	return fmt.Sprintf("docauth.Credentials{AccessKeyID: %q, %s, secret: redacted}", c.accessKeyID, kind)
}

// GoString is String, so %#v prints no secret either.
func (c *Credentials) GoString() string { return c.String() }

// Close frees the library's copy of the credentials. It is idempotent and safe to call
// concurrently with other methods; it always returns nil.
func (c *Credentials) Close() error { return c.h.close() }

// use runs f with the C pointer under the read lock, or reports use after Close.
func (c *Credentials) use(f func(*C.docauth_credentials) error) error {
	if c == nil {
		return newGoError(ResultNullParameter, "credentials are nil", nil)
	}
	return c.h.use(f)
}
