//! C ABI of the metrics: the values a runtime, an engine and a credentials provider keep,
//! rendered as Prometheus text or OpenMetrics for the host to serve (see `crate::metrics`).

use std::ffi::c_char;

use super::boundary::{arg_opt_ref, Out};
use super::bytes::docauth_bytes;
use super::credentials_provider::docauth_credentials_provider;
use super::error::docauth_error;
use super::policy::docauth_engine;
use super::session::docauth_runtime;
use crate::metrics::{render, Format};
use crate::{Error, ResultCode};

/// The exposition format of `docauth_metrics_render`: one of the
/// `DOCAUTH_METRICS_FORMAT_*` constants. A plain integer rather than an enum so that a value
/// this library does not know is an `INVALID_ARGUMENT` error, never undefined behaviour.
pub type docauth_metrics_format = u32;

/// The Prometheus text format, version 0.0.4 (what every Prometheus server scrapes).
pub const DOCAUTH_METRICS_FORMAT_PROMETHEUS: docauth_metrics_format = 0;

/// OpenMetrics 1.0 text (with `# UNIT` lines, ending with `# EOF`).
pub const DOCAUTH_METRICS_FORMAT_OPENMETRICS: docauth_metrics_format = 1;

fn format_of(format: docauth_metrics_format) -> Option<Format> {
    match format {
        DOCAUTH_METRICS_FORMAT_PROMETHEUS => Some(Format::Prometheus),
        DOCAUTH_METRICS_FORMAT_OPENMETRICS => Some(Format::OpenMetrics),
        _ => None,
    }
}

/// Renders the current metrics of `runtime` (its sessions), `engine` (its decisions) and
/// `provider` (its STS calls) in `format`, as one exposition a host serves at `/metrics`
/// (with the `Content-Type` from `docauth_metrics_content_type`). Any of the three may be
/// NULL: its metrics are left out. Every metric name starts with `docauth_`; labels take
/// only fixed values (never a database, collection or user name). docs/metrics.md lists them.
///
/// On success `*out` receives the text (UTF-8, not NUL-terminated: use `docauth_bytes_len`),
/// owned by the caller, freed with `docauth_bytes_free`.
///
/// Threads: may be called from any thread, at any time, also while sessions run and
/// decisions are made on other threads (the values are read without stopping them, so
/// counters read at the same instant may differ by the events in flight); also from an
/// audit callback. The handles must stay alive for the call.
///
/// Errors: `DOCAUTH_RESULT_NULL_PARAMETER` (out), `DOCAUTH_RESULT_INVALID_ARGUMENT` (a
/// `format` that is not a `DOCAUTH_METRICS_FORMAT_*` constant).
///
/// # Safety
/// `runtime`, `engine` and `provider` are each NULL or a live handle of their type; `out`
/// and `err` are NULL or writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn docauth_metrics_render(
    runtime: *const docauth_runtime,
    engine: *const docauth_engine,
    provider: *const docauth_credentials_provider,
    format: docauth_metrics_format,
    out: *mut *mut docauth_bytes,
    err: *mut *mut docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_metrics_render", {
        // SAFETY: per this function's contract, NULL or writable storage for one pointer.
        let out = unsafe { Out::new(out, "out") }?;
        let format = format_of(format).ok_or_else(|| {
            Error::new(
                ResultCode::InvalidArgument,
                format!("`format` is {format}; use DOCAUTH_METRICS_FORMAT_PROMETHEUS (0) or DOCAUTH_METRICS_FORMAT_OPENMETRICS (1)"),
            )
        })?;
        let mut sources: Vec<Box<dyn prometheus_client::collector::Collector>> = Vec::new();
        // SAFETY: per this function's contract, NULL or a live runtime.
        if let Some(r) = unsafe { arg_opt_ref(runtime) } {
            sources.push(Box::new(r.inner.metrics()));
        }
        // SAFETY: per this function's contract, NULL or a live engine.
        if let Some(e) = unsafe { arg_opt_ref(engine) } {
            sources.push(Box::new(e.inner.metrics()));
        }
        // SAFETY: per this function's contract, NULL or a live provider.
        if let Some(p) = unsafe { arg_opt_ref(provider) } {
            sources.push(Box::new(p.inner.metrics()));
        }
        out.set_boxed(docauth_bytes::new(render(format, sources).into_bytes()));
        Ok(())
    })
}

/// The HTTP `Content-Type` of `format`
/// (`text/plain; version=0.0.4; charset=utf-8` for Prometheus text,
/// `application/openmetrics-text; version=1.0.0; charset=utf-8` for OpenMetrics), a static
/// NUL-terminated string never to be freed; NULL for a `format` that is not a
/// `DOCAUTH_METRICS_FORMAT_*` constant (and if the library panicked, a bug). Callable from
/// any thread.
#[no_mangle]
pub extern "C" fn docauth_metrics_content_type(format: docauth_metrics_format) -> *const c_char {
    ffi_boundary!(default: std::ptr::null(), "docauth_metrics_content_type", {
        format_of(format).map_or(std::ptr::null(), |f| f.content_type_c().as_ptr())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::{docauth_bytes_data, docauth_bytes_free, docauth_bytes_len};
    use std::ffi::CStr;
    use std::ptr;

    #[test]
    fn content_types_match_the_renderer() {
        for (c, f) in [
            (DOCAUTH_METRICS_FORMAT_PROMETHEUS, Format::Prometheus),
            (DOCAUTH_METRICS_FORMAT_OPENMETRICS, Format::OpenMetrics),
        ] {
            let p = docauth_metrics_content_type(c);
            // SAFETY: a static NUL-terminated string.
            let text = unsafe { CStr::from_ptr(p) }.to_str().unwrap();
            assert_eq!(text, f.content_type());
        }
        assert!(docauth_metrics_content_type(2).is_null());
    }

    #[test]
    fn nothing_to_render_is_an_empty_exposition_and_a_bad_format_an_error() {
        let mut out: *mut docauth_bytes = ptr::null_mut();
        let r = c_call!(docauth_metrics_render(
            ptr::null(),
            ptr::null(),
            ptr::null(),
            DOCAUTH_METRICS_FORMAT_OPENMETRICS,
            &mut out,
            ptr::null_mut()
        ));
        assert_eq!(r, ResultCode::Ok);
        let (data, len) = (
            c_call!(docauth_bytes_data(out)),
            c_call!(docauth_bytes_len(out)),
        );
        // SAFETY: `data` points to the `len` bytes of the live buffer `out`.
        let text = unsafe { std::slice::from_raw_parts(data, len) };
        assert_eq!(text, b"# EOF\n");
        c_call!(docauth_bytes_free(out));
        let r = c_call!(docauth_metrics_render(
            ptr::null(),
            ptr::null(),
            ptr::null(),
            7,
            &mut out,
            ptr::null_mut()
        ));
        assert_eq!(r, ResultCode::InvalidArgument);
    }
}
