//! Unit tests of the MONGODB-AWS conversation's C entry points.

use super::*;
use crate::ffi::{
    docauth_bytes_data, docauth_bytes_free, docauth_bytes_len, docauth_error_code,
    docauth_error_free, docauth_error_message,
};
use bson::{doc, spec::BinarySubtype, Binary};
use std::ffi::{CStr, CString};
use std::ptr;

const NONCE: [u8; 32] = [7u8; 32];
const TIME: i64 = 1_573_086_367;

/// Runs `call`, returning its result and, on failure, the error's code and message.
fn outcome(
    call: impl FnOnce(*mut *mut docauth_error) -> ResultCode,
) -> (ResultCode, Option<(ResultCode, String)>) {
    let mut err: *mut docauth_error = ptr::null_mut();
    let result = call(&mut err);
    if err.is_null() {
        return (result, None);
    }
    let message = c_call!(docauth_error_message(err));
    // SAFETY: a live error's message is a NUL-terminated string.
    let message = unsafe { CStr::from_ptr(message) };
    let detail = (
        c_call!(docauth_error_code(err)),
        message.to_str().unwrap().to_owned(),
    );
    c_call!(docauth_error_free(err));
    (result, Some(detail))
}

fn credentials(token: Option<&str>) -> *mut docauth_credentials {
    let akid = CString::new("AKIAICGVLKOKZVY3X3DA").unwrap();
    let secret = CString::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY").unwrap();
    let token = token.map(|t| CString::new(t).unwrap());
    let mut out = ptr::null_mut();
    let r = c_call!(docauth_credentials_new(
        akid.as_ptr(),
        secret.as_ptr(),
        token.as_ref().map_or(ptr::null(), |t| t.as_ptr()),
        &mut out,
        ptr::null_mut(),
    ));
    assert_eq!(r, ResultCode::Ok);
    assert!(!out.is_null());
    out
}

fn conversation(creds: *const docauth_credentials) -> *mut docauth_aws_conversation {
    let mut out = ptr::null_mut();
    let r = c_call!(docauth_aws_conversation_new_for_testing(
        creds,
        NONCE.as_ptr(),
        32,
        TIME,
        &mut out,
        ptr::null_mut(),
    ));
    assert_eq!(r, ResultCode::Ok);
    out
}

fn take(bytes: *mut docauth_bytes) -> Vec<u8> {
    let (data, len) = (
        c_call!(docauth_bytes_data(bytes)),
        c_call!(docauth_bytes_len(bytes)),
    );
    // SAFETY: `bytes` is a live buffer of `len` bytes from the library, freed below.
    let v = unsafe { std::slice::from_raw_parts(data, len) }.to_vec();
    c_call!(docauth_bytes_free(bytes));
    v
}

fn first(conv: *mut docauth_aws_conversation) -> Vec<u8> {
    let mut out = ptr::null_mut();
    assert_eq!(
        c_call!(docauth_aws_conversation_client_first(
            conv,
            &mut out,
            ptr::null_mut()
        )),
        ResultCode::Ok
    );
    take(out)
}

fn server_first(h: &str) -> Vec<u8> {
    let mut s = NONCE.to_vec();
    s.extend([9u8; 32]);
    bson::to_vec(&doc! {"s": Binary {subtype: BinarySubtype::Generic, bytes: s}, "h": h}).unwrap()
}

/// client_final with a sentinel out-param that must stay untouched on failure.
fn final_result(
    conv: *mut docauth_aws_conversation,
    sf: &[u8],
) -> (ResultCode, Option<(ResultCode, String)>, *mut docauth_bytes) {
    let sentinel = 0x1234usize as *mut docauth_bytes;
    let mut out = sentinel;
    let (r, e) = outcome(|err| {
        c_call!(docauth_aws_conversation_client_final(
            conv,
            sf.as_ptr(),
            sf.len(),
            &mut out,
            err
        ))
    });
    if r != ResultCode::Ok {
        assert_eq!(out, sentinel, "out-param written on failure");
    }
    (r, e, out)
}

#[test]
fn a_full_conversation_equals_the_rust_api() {
    for token in [None, Some("FwoGZXIvYXdzEJr//////////wEaDOKEN+/=")] {
        let creds = credentials(token);
        let conv = conversation(creds);
        // The conversation keeps its own reference: free the credentials right away.
        c_call!(docauth_credentials_free(creds));
        let f = first(conv);
        let sf = server_first("sts.us-west-2.amazonaws.com");
        let (r, e, out) = final_result(conv, &sf);
        assert_eq!(r, ResultCode::Ok, "{e:?}");
        let last = take(out);
        c_call!(docauth_aws_conversation_free(conv));

        let rust_creds = Credentials::new(
            "AKIAICGVLKOKZVY3X3DA",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token,
        )
        .unwrap();
        let mut c = ClientConversation::with_nonce_and_time(
            rust_creds,
            NONCE,
            UNIX_EPOCH + Duration::from_secs(TIME as u64),
        );
        assert_eq!(f, c.client_first().unwrap());
        assert_eq!(last, c.client_final_reference(&sf).unwrap());
    }
}

#[test]
fn credentials_arguments_are_checked() {
    let good = CString::new("AKID").unwrap();
    let bad_utf8 = b"AK\xffID\0";
    let empty = CString::new("").unwrap();
    let spaced = CString::new("tok en").unwrap();
    let sentinel = 0x99usize as *mut docauth_credentials;
    let cases: Vec<(
        *const c_char,
        *const c_char,
        *const c_char,
        ResultCode,
        &str,
    )> = vec![
        (
            ptr::null(),
            good.as_ptr(),
            ptr::null(),
            ResultCode::NullParameter,
            "`access_key_id` must not be NULL",
        ),
        (
            good.as_ptr(),
            ptr::null(),
            ptr::null(),
            ResultCode::NullParameter,
            "`secret_access_key` must not be NULL",
        ),
        (
            bad_utf8.as_ptr().cast(),
            good.as_ptr(),
            ptr::null(),
            ResultCode::InvalidUtf8,
            "`access_key_id` is not valid UTF-8",
        ),
        (
            good.as_ptr(),
            bad_utf8.as_ptr().cast(),
            ptr::null(),
            ResultCode::InvalidUtf8,
            "`secret_access_key` is not valid UTF-8",
        ),
        (
            good.as_ptr(),
            good.as_ptr(),
            bad_utf8.as_ptr().cast(),
            ResultCode::InvalidUtf8,
            "`session_token` is not valid UTF-8",
        ),
        (
            empty.as_ptr(),
            good.as_ptr(),
            ptr::null(),
            ResultCode::AwsInvalidCredentials,
            "access key id is empty",
        ),
        (
            good.as_ptr(),
            empty.as_ptr(),
            ptr::null(),
            ResultCode::AwsInvalidCredentials,
            "secret access key",
        ),
        (
            good.as_ptr(),
            good.as_ptr(),
            empty.as_ptr(),
            ResultCode::AwsInvalidCredentials,
            "session token",
        ),
        (
            good.as_ptr(),
            good.as_ptr(),
            spaced.as_ptr(),
            ResultCode::AwsInvalidCredentials,
            "session token",
        ),
    ];
    for (akid, secret, token, code, text) in cases {
        let mut out = sentinel;
        let (r, e) =
            outcome(|err| c_call!(docauth_credentials_new(akid, secret, token, &mut out, err)));
        assert_eq!(r, code, "{text}");
        let (ecode, message) = e.unwrap();
        assert_eq!(ecode, code);
        assert!(message.contains(text), "{message} !~ {text}");
        assert_eq!(out, sentinel);
    }
    // NULL out.
    let (r, _) = outcome(|err| {
        c_call!(docauth_credentials_new(
            good.as_ptr(),
            good.as_ptr(),
            ptr::null(),
            ptr::null_mut(),
            err,
        ))
    });
    assert_eq!(r, ResultCode::NullParameter);
    // NULL err is fine too.
    assert_eq!(
        c_call!(docauth_credentials_new(
            ptr::null(),
            ptr::null(),
            ptr::null(),
            ptr::null_mut(),
            ptr::null_mut()
        )),
        ResultCode::NullParameter
    );
    c_call!(docauth_credentials_free(ptr::null_mut()));
    c_call!(docauth_aws_conversation_free(ptr::null_mut()));
}

#[test]
fn conversation_constructors_check_their_arguments() {
    let creds = credentials(None);
    let sentinel = 0x77usize as *mut docauth_aws_conversation;
    let mut out = sentinel;
    let (r, _) = outcome(|err| c_call!(docauth_aws_conversation_new(ptr::null(), &mut out, err)));
    assert_eq!(r, ResultCode::NullParameter);
    assert_eq!(out, sentinel);
    let (r, _) = outcome(|err| c_call!(docauth_aws_conversation_new(creds, ptr::null_mut(), err)));
    assert_eq!(r, ResultCode::NullParameter);

    let cases: Vec<(*const u8, usize, i64, ResultCode, &str)> = vec![
        (
            ptr::null(),
            32,
            TIME,
            ResultCode::NullParameter,
            "client_nonce",
        ),
        (
            ptr::null(),
            0,
            TIME,
            ResultCode::NullParameter,
            "client_nonce",
        ),
        (
            NONCE.as_ptr(),
            31,
            TIME,
            ResultCode::InvalidArgument,
            "is 31",
        ),
        (NONCE.as_ptr(), 0, TIME, ResultCode::InvalidArgument, "is 0"),
        (
            NONCE.as_ptr(),
            32,
            -1,
            ResultCode::InvalidArgument,
            "unix_time_seconds",
        ),
        (
            NONCE.as_ptr(),
            32,
            253_402_300_800,
            ResultCode::InvalidArgument,
            "unix_time_seconds",
        ),
    ];
    for (nonce, len, time, code, text) in cases {
        let mut out = sentinel;
        let (r, e) = outcome(|err| {
            c_call!(docauth_aws_conversation_new_for_testing(
                creds, nonce, len, time, &mut out, err
            ))
        });
        assert_eq!(r, code, "{text}");
        assert!(e.unwrap().1.contains(text));
        assert_eq!(out, sentinel);
    }
    // Real constructor: random nonces.
    let mut a = ptr::null_mut();
    let mut b = ptr::null_mut();
    assert_eq!(
        c_call!(docauth_aws_conversation_new(creds, &mut a, ptr::null_mut())),
        ResultCode::Ok
    );
    assert_eq!(
        c_call!(docauth_aws_conversation_new(creds, &mut b, ptr::null_mut())),
        ResultCode::Ok
    );
    c_call!(docauth_credentials_free(creds));
    assert_ne!(first(a), first(b));
    c_call!(docauth_aws_conversation_free(a));
    c_call!(docauth_aws_conversation_free(b));
}

#[test]
fn every_validation_failure_through_the_c_abi() {
    let creds = credentials(Some("token"));
    let mut wrong_nonce = NONCE.to_vec();
    wrong_nonce[0] ^= 0xff;
    wrong_nonce.extend([9u8; 32]);
    let bin = |bytes: Vec<u8>| Binary {
        subtype: BinarySubtype::Generic,
        bytes,
    };
    let cases: Vec<(Vec<u8>, ResultCode, &str)> = vec![
        (
            b"junk".to_vec(),
            ResultCode::SaslMalformedServerFirst,
            "not the BSON document",
        ),
        (
            bson::to_vec(&doc! {"h": "sts.amazonaws.com"}).unwrap(),
            ResultCode::SaslMalformedServerFirst,
            "\"s\"",
        ),
        (
            bson::to_vec(&doc! {"s": bin(NONCE.to_vec()), "h": "sts.amazonaws.com"}).unwrap(),
            ResultCode::SaslServerNonceLength,
            "32 bytes long",
        ),
        (
            bson::to_vec(&doc! {"s": bin(wrong_nonce), "h": "sts.amazonaws.com"}).unwrap(),
            ResultCode::SaslServerNonceMismatch,
            "does not start with",
        ),
        (server_first(""), ResultCode::SaslHostLength, "0 bytes"),
        (
            server_first(&"a".repeat(256)),
            ResultCode::SaslHostLength,
            "256 bytes",
        ),
        (
            server_first("sts..amazonaws.com"),
            ResultCode::SaslHostEmptyLabel,
            "empty label",
        ),
        (
            server_first(".amazonaws.com"),
            ResultCode::SaslHostEdgeDot,
            "dot",
        ),
        (
            server_first("sts.amazonaws.com."),
            ResultCode::SaslHostEdgeDot,
            "dot",
        ),
        (
            server_first("sts.amazonaws.com\r\n"),
            ResultCode::SaslMalformedServerFirst,
            "byte 0x0d",
        ),
        (
            vec![0u8; 16 * 1024 * 1024],
            ResultCode::SaslMalformedServerFirst,
            "at most 1024",
        ),
    ];
    for (sf, code, text) in cases {
        let conv = conversation(creds);
        first(conv);
        let (r, e, _) = final_result(conv, &sf);
        assert_eq!(r, code, "{text}");
        let (ecode, message) = e.unwrap();
        assert_eq!(ecode, code);
        assert!(message.contains(text), "{message} !~ {text}");
        assert!(!message.contains("token"), "{message}");
        c_call!(docauth_aws_conversation_free(conv));
    }
    // NULL server_first with a length; NULL with length 0 is an empty (malformed) message.
    let conv = conversation(creds);
    first(conv);
    let mut out = ptr::null_mut();
    let (r, _) = outcome(|err| {
        c_call!(docauth_aws_conversation_client_final(
            conv,
            ptr::null(),
            5,
            &mut out,
            err
        ))
    });
    assert_eq!(r, ResultCode::NullParameter);
    let (r, _) = outcome(|err| {
        c_call!(docauth_aws_conversation_client_final(
            conv,
            ptr::null(),
            0,
            &mut out,
            err
        ))
    });
    assert_eq!(r, ResultCode::SaslMalformedServerFirst);
    assert!(out.is_null());
    c_call!(docauth_aws_conversation_free(conv));
    c_call!(docauth_credentials_free(creds));
}

#[test]
fn state_errors_and_null_handles() {
    let creds = credentials(None);
    let conv = conversation(creds);
    let sf = server_first("sts.amazonaws.com");
    let (r, e, _) = final_result(conv, &sf);
    assert_eq!(r, ResultCode::InvalidState);
    assert!(e.unwrap().1.contains("before client_first"));
    first(conv);
    let mut out = ptr::null_mut();
    let (r, _) = outcome(|err| c_call!(docauth_aws_conversation_client_first(conv, &mut out, err)));
    assert_eq!(r, ResultCode::InvalidState);
    let (r, _, out) = final_result(conv, &sf);
    assert_eq!(r, ResultCode::Ok);
    take(out);
    let (r, _, _) = final_result(conv, &sf);
    assert_eq!(r, ResultCode::InvalidState);

    let mut out = ptr::null_mut();
    let (r, e) = outcome(|err| {
        c_call!(docauth_aws_conversation_client_first(
            ptr::null_mut(),
            &mut out,
            err
        ))
    });
    assert_eq!(r, ResultCode::NullParameter);
    assert!(e.unwrap().1.contains("`conversation`"));
    let (r, _) = outcome(|err| {
        c_call!(docauth_aws_conversation_client_first(
            conv,
            ptr::null_mut(),
            err
        ))
    });
    assert_eq!(r, ResultCode::NullParameter);
    let (r, _) = outcome(|err| {
        c_call!(docauth_aws_conversation_client_final(
            ptr::null_mut(),
            sf.as_ptr(),
            sf.len(),
            &mut out,
            err,
        ))
    });
    assert_eq!(r, ResultCode::NullParameter);
    let (r, _) = outcome(|err| {
        c_call!(docauth_aws_conversation_client_final(
            conv,
            sf.as_ptr(),
            sf.len(),
            ptr::null_mut(),
            err
        ))
    });
    assert_eq!(r, ResultCode::NullParameter);
    c_call!(docauth_aws_conversation_free(conv));
    c_call!(docauth_credentials_free(creds));
}
