//! Reading what a server answers, never more than a cap: documents are refused past theirs,
//! token answers too, and error bodies are cut short for the message. Every body read from a
//! server goes through [`read_capped`], which streams and stops at the first chunk past the
//! cap. Also the `Retry-After` header, clamped.

use super::error::{strip_query, RegistryError};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, Response};
use std::time::Duration;
use url::Url;

/// Largest manifest or config read from a registry.
pub const MAX_DOCUMENT: usize = 4 << 20;

/// Largest token service answer read (tokens are a few KiB).
pub const MAX_TOKEN_ANSWER: usize = 1 << 20;

/// Most of an error answer's body read (the rest is not read; the message says so).
pub const MAX_ERROR_BODY: usize = 64 << 10;

/// Longest wait a `Retry-After` can ask for (the retry policy caps it further).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// An error about what a registry served.
pub(super) fn invalid(url: &Url, message: String) -> RegistryError {
    // An answer that cannot be used (too large, another digest, not JSON) would be the same
    // again: never retried.
    RegistryError::local("GET", strip_query(url), message)
}

/// Longest a body may take to arrive, whatever its size: a server sending a byte now and
/// then (each read within the client's read timeout) cannot hold a run for ever.
pub const BODY_DEADLINE: Duration = Duration::from_secs(120);

/// How a capped read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// The whole body, within the cap.
    Whole,
    /// More than the cap: reading stopped there.
    TooLarge,
    /// Not done within the deadline: reading stopped.
    TooSlow,
}

/// Up to `cap` bytes of the body of `resp`, streamed, within [`BODY_DEADLINE`].
pub(super) async fn read_capped(
    resp: Response,
    cap: usize,
) -> Result<(Vec<u8>, Ending), reqwest::Error> {
    read_capped_within(resp, cap, BODY_DEADLINE).await
}

/// Up to `cap` bytes of the body of `resp`, and how reading ended: it stops at the first
/// chunk past the cap (the rest is never read) or at `deadline`, so no answer can make us
/// hold more than `cap` bytes (plus one chunk) or wait longer than `deadline`.
pub(super) async fn read_capped_within(
    resp: Response,
    cap: usize,
    deadline: Duration,
) -> Result<(Vec<u8>, Ending), reqwest::Error> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    let read = async {
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            let chunk = chunk?;
            let room = cap - out.len();
            if chunk.len() > room {
                out.extend_from_slice(&chunk[..room]);
                return Ok(Ending::TooLarge);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Ending::Whole)
    };
    let ending = match tokio::time::timeout(deadline, read).await {
        Ok(r) => r?,
        Err(_) => Ending::TooSlow,
    };
    Ok((out, ending))
}

/// The body of `resp` (a document from `url`), refused past `max` bytes.
pub(super) async fn read_limited(
    url: &Url,
    resp: Response,
    max: usize,
) -> Result<Vec<u8>, RegistryError> {
    let too_large = || invalid(url, format!("document larger than {max} bytes"));
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    match read_capped(resp, max).await {
        Ok((bytes, Ending::Whole)) => Ok(bytes),
        Ok((_, Ending::TooLarge)) => Err(too_large()),
        Ok((_, Ending::TooSlow)) => Err(too_slow(url)),
        Err(e) => Err(RegistryError::transport("GET", url, &e)),
    }
}

/// The error for a body that did not arrive within [`BODY_DEADLINE`] (retried like a
/// timeout).
pub(super) fn too_slow(url: &Url) -> RegistryError {
    let mut e = invalid(
        url,
        format!("the answer's body did not arrive within {BODY_DEADLINE:?}"),
    );
    e.status = Some(408);
    e.local = false;
    e
}

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    parse_retry_after(h.get(RETRY_AFTER)?.to_str().ok()?)
}

/// A `Retry-After` value in seconds (the HTTP-date form is not used by registries and is
/// ignored), at most [`MAX_RETRY_AFTER`] however large it is written.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = v.parse::<u64>().unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// The error for an unsuccessful answer: its status, `Retry-After`, and what the first
/// [`MAX_ERROR_BODY`] bytes of its body say (the rest is not read).
pub(super) async fn error_from(method: &Method, url: &Url, resp: Response) -> RegistryError {
    let status = resp.status().as_u16();
    let ra = retry_after(resp.headers());
    let (body, ending) = read_capped(resp, MAX_ERROR_BODY)
        .await
        .unwrap_or((Vec::new(), Ending::Whole));
    let mut e = RegistryError::from_status(method.as_str(), url, status, ra, &body);
    match ending {
        Ending::Whole => {}
        Ending::TooLarge => e.message.push_str(&format!(
            " (the answer's body was cut after {MAX_ERROR_BODY} bytes)"
        )),
        Ending::TooSlow => e.message.push_str(&format!(
            " (the answer's body was cut: it did not arrive within {BODY_DEADLINE:?})"
        )),
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_answer_is_not_retried_a_slow_one_is() {
        let url = Url::parse("http://127.0.0.1:5000/v2/x/blobs/sha256:00").unwrap();
        let e = invalid(
            &url,
            "the registry served a blob with another digest".into(),
        );
        assert!(!e.is_retryable(), "{e:?}");
        assert!(too_slow(&url).is_retryable());
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999"),
            Some(MAX_RETRY_AFTER)
        );
        for bad in ["", "-1", "1.5", "Wed, 21 Oct 2015 07:28:00 GMT", "+3", "٣"] {
            assert_eq!(parse_retry_after(bad), None, "{bad:?}");
        }
    }

    mod proptests {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn retry_after_never_panics_and_is_clamped(v in any::<String>()) {
                if let Some(d) = parse_retry_after(&v) {
                    prop_assert!(d <= MAX_RETRY_AFTER);
                }
            }

            #[test]
            fn retry_after_seconds_are_taken_up_to_the_cap(n in any::<u64>(), pad in "[ \t]{0,2}") {
                let d = parse_retry_after(&format!("{pad}{n}{pad}")).unwrap();
                prop_assert_eq!(d, Duration::from_secs(n).min(MAX_RETRY_AFTER));
            }

            #[test]
            fn huge_retry_after_digits_are_clamped(n in "[1-9][0-9]{20,200}") {
                prop_assert_eq!(parse_retry_after(&n), Some(MAX_RETRY_AFTER));
            }
        }
    }
}
