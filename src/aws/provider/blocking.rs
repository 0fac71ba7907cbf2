//! The blocking bridge: the C ABI is not async, so its calls run on a small library-owned
//! tokio runtime, and are refused from inside an async runtime (where they would deadlock).

use crate::{Error, Result, ResultCode};

static RUNTIME: once_cell::sync::Lazy<std::result::Result<tokio::runtime::Runtime, String>> =
    once_cell::sync::Lazy::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("docauth-aws")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });

/// Runs `future` to completion on the library's runtime, from a thread that is not
/// itself running async code.
pub(super) fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::new(
            ResultCode::InvalidState,
            "a blocking credentials call was made from inside an async runtime; await CredentialsProvider::resolve instead",
        ));
    }
    let runtime = RUNTIME.as_ref().map_err(|e| {
        Error::new(
            ResultCode::InvalidState,
            format!("could not start the library's async runtime: {e}"),
        )
    })?;
    Ok(runtime.block_on(future))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_calls_are_refused_inside_a_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt.block_on(async { block_on(async { 1 }) }).unwrap_err();
        assert_eq!(e.code(), ResultCode::InvalidState);
        assert_eq!(block_on(async { 2 }).unwrap(), 2);
    }
}
