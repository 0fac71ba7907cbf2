package docauth

// #include "include_docauth.h"
import "C"

import (
	"runtime"
)

// AwsConversation is one client side of a MONGODB-AWS SASL conversation:
// ClientFirst, then ClientFinal with the server's reply, each exactly once.
//
// Methods are serialized by a mutex (the C object is single-threaded), so calling them or
// Close from several goroutines is safe.
type AwsConversation struct {
	h *handle[*C.docauth_aws_conversation] // calls take the write lock: the C object is single-threaded
}

// NewAwsConversation starts a conversation signed with creds, with a fresh random client
// nonce and the system clock. creds may be closed afterwards.
func NewAwsConversation(creds *Credentials) (*AwsConversation, error) {
	var out *C.docauth_aws_conversation
	err := creds.use(func(cp *C.docauth_credentials) error {
		var cerr *C.docauth_error
		rc := C.docauth_aws_conversation_new(cp, &out, &cerr)
		return takeError(rc, cerr)
	})
	if err != nil {
		return nil, err
	}
	return wrapConversation(out), nil
}

// NewAwsConversationForTesting is NewAwsConversation with an injected client nonce (must
// be 32 bytes) and clock (Unix seconds). For tests and conformance checks only: a fixed
// nonce defeats replay protection.
func NewAwsConversationForTesting(creds *Credentials, clientNonce []byte, unixTimeSeconds int64) (*AwsConversation, error) {
	var out *C.docauth_aws_conversation
	err := creds.use(func(cp *C.docauth_credentials) error {
		var cerr *C.docauth_error
		nonce, nonceLen := bytesArg(clientNonce)
		rc := C.docauth_aws_conversation_new_for_testing(cp, nonce, nonceLen,
			C.int64_t(unixTimeSeconds), &out, &cerr)
		runtime.KeepAlive(clientNonce)
		return takeError(rc, cerr)
	})
	if err != nil {
		return nil, err
	}
	return wrapConversation(out), nil
}

func wrapConversation(ptr *C.docauth_aws_conversation) *AwsConversation {
	free := func(p *C.docauth_aws_conversation) { C.docauth_aws_conversation_free(p) }
	return &AwsConversation{h: newHandle(ptr, free, "AwsConversation")}
}

// ClientFirst returns the client-first SASL payload, the BSON document
// {r: BinData(0, 32-byte nonce), p: 110}. Calling it twice returns ErrInvalidState.
func (c *AwsConversation) ClientFirst() ([]byte, error) {
	var out *C.docauth_bytes
	err := c.h.useExclusive(func(p *C.docauth_aws_conversation) error {
		var cerr *C.docauth_error
		return takeError(C.docauth_aws_conversation_client_first(p, &out, &cerr), cerr)
	})
	if err != nil {
		return nil, err
	}
	return takeBytes(out), nil
}

// ClientFinal validates the server-first payload {s: BinData, h: string} and returns the
// client-final payload {a: Authorization, d: X-Amz-Date, t?: session token}: the signed
// STS GetCallerIdentity request. It must follow ClientFirst and be called once.
//
// Errors: ErrSaslMalformedServerFirst, ErrSaslServerNonceLength,
// ErrSaslServerNonceMismatch, ErrSaslHostLength, ErrSaslHostEmptyLabel,
// ErrSaslHostEdgeDot, ErrSigningFailed, ErrInvalidState.
func (c *AwsConversation) ClientFinal(serverFirst []byte) ([]byte, error) {
	var out *C.docauth_bytes
	err := c.h.useExclusive(func(p *C.docauth_aws_conversation) error {
		var cerr *C.docauth_error
		data, n := bytesArg(serverFirst)
		rc := C.docauth_aws_conversation_client_final(p, data, n, &out, &cerr)
		runtime.KeepAlive(serverFirst)
		return takeError(rc, cerr)
	})
	if err != nil {
		return nil, err
	}
	return takeBytes(out), nil
}

// Close frees the conversation. It is idempotent, safe to call concurrently with the
// other methods, and always returns nil.
func (c *AwsConversation) Close() error { return c.h.close() }
