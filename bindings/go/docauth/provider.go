package docauth

// #include <stdlib.h>
// #include "include_docauth.h"
import "C"

// CredentialsProvider resolves db users (IAM role names such as "teleport-docdb-user", or
// full role ARNs) to temporary AWS credentials: the service's own credentials (the AWS
// default chain, static keys, or a profile) assume the database's assume_role_arn first
// when it has one (with its external_id), then the db user's role.
//
// A *CredentialsProvider may be shared by any number of goroutines: Resolve and
// Invalidate may run concurrently, and concurrent resolutions of the same db user wait for
// one STS call. Credentials are cached per db user and session until five minutes before
// they expire. Resolve blocks its goroutine's OS thread until STS answers (bounded by the
// configured timeouts).
type CredentialsProvider struct {
	h *handle[*C.docauth_credentials_provider]
}

// NewCredentialsProvider creates a provider from the JSON configuration documented in
// include/docauth.h (docauth_credentials_provider_new), for example
//
//	{"source": {"type": "default"}, "region": "us-east-1"}
//
// Unknown fields return ErrInvalidConfig. No network call is made. Sessions take a
// database's AWS settings (account_id, region, assume_role_arn, external_id) from its entry
// in the engine configuration (databases[].aws); the optional "database" block is for
// Resolve without sessions, and a session refuses one that contradicts the engine's entry.
func NewCredentialsProvider(configJSON string) (*CredentialsProvider, error) {
	cConfig, err := cString("configuration", configJSON)
	if err != nil {
		return nil, err
	}
	defer freeCString(cConfig) // wiped: it may hold a static secret key
	var out *C.docauth_credentials_provider
	var cerr *C.docauth_error
	rc := C.docauth_credentials_provider_new(cConfig, &out, &cerr)
	if err := takeError(rc, cerr); err != nil {
		return nil, err
	}
	free := func(p *C.docauth_credentials_provider) { C.docauth_credentials_provider_free(p) }
	return &CredentialsProvider{h: newHandle(out, free, "CredentialsProvider")}, nil
}

// Resolve returns temporary credentials of the IAM role dbUser names. sessionUser (the
// identity's user name; "" for none) becomes the STS role session name. Errors match
// ErrAwsNoCredentials, ErrAwsAssumeRoleDenied, ErrAwsStsUnreachable, ErrAwsInvalidToken,
// ErrAwsInvalidRoleArn, ErrAwsStsError, ErrAwsCredentialsSourceFailed with errors.Is;
// their messages say what to fix.
func (p *CredentialsProvider) Resolve(dbUser, sessionUser string) (*Credentials, error) {
	cUser, err := cString("db user", dbUser)
	if err != nil {
		return nil, err
	}
	defer freeCString(cUser)
	var cSession *C.char // NULL: no session user
	if sessionUser != "" {
		if cSession, err = cString("session user", sessionUser); err != nil {
			return nil, err
		}
		defer freeCString(cSession)
	}
	var out *C.docauth_credentials
	err = p.use(func(ptr *C.docauth_credentials_provider) error {
		var cerr *C.docauth_error
		rc := C.docauth_credentials_provider_resolve(ptr, cUser, cSession, &out, &cerr)
		return takeError(rc, cerr)
	})
	if err != nil {
		return nil, err
	}
	return wrapCredentials(out, true), nil
}

// Invalidate drops the cached credentials of dbUser (name or ARN), e.g. after DocumentDB
// rejected an authentication made with them; the next Resolve calls STS again.
func (p *CredentialsProvider) Invalidate(dbUser string) error {
	cUser, err := cString("db user", dbUser)
	if err != nil {
		return err
	}
	defer freeCString(cUser)
	return p.use(func(ptr *C.docauth_credentials_provider) error {
		var cerr *C.docauth_error
		rc := C.docauth_credentials_provider_invalidate(ptr, cUser, &cerr)
		return takeError(rc, cerr)
	})
}

// Close frees the provider and its cached credentials. It waits for running calls, is
// idempotent, and always returns nil.
func (p *CredentialsProvider) Close() error { return p.h.close() }

func (p *CredentialsProvider) use(f func(*C.docauth_credentials_provider) error) error {
	if p == nil {
		return newGoError(ResultNullParameter, "credentials provider is nil", nil)
	}
	return p.h.use(f)
}
