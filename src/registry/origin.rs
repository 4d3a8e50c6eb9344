//! Where a request may go and what goes with it: credentials only to the origin (scheme, host
//! and port) they are for; a URL elsewhere that a registry points to (an upload `Location`, a
//! redirect to storage, ECR's and S3's presigned URLs) gets the request without them; nothing
//! ever goes from https down to plain http. Pure decisions, and the redirect policy built on
//! them.

use super::error::strip_query;
use url::Url;

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 10;

/// What may go to a URL a registry pointed to (an upload `Location`, a redirect), from where
/// the previous request went: credentials only to the same origin (scheme, host and port);
/// elsewhere (a presigned storage URL) the request goes without them; never from https down
/// to plain http, nor to another scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hop {
    /// Same scheme, host and port: credentials may go.
    SameOrigin,
    /// Another origin: the request goes without credentials.
    CrossOrigin,
    /// Not followed at all, and why.
    Refused(String),
}

/// The [`Hop`] from `from` to `to`.
pub fn hop(from: &Url, to: &Url) -> Hop {
    if !matches!(to.scheme(), "http" | "https") {
        return Hop::Refused(format!("{:?} is not an http(s) URL", to.scheme()));
    }
    if from.scheme() == "https" && to.scheme() != "https" {
        return Hop::Refused(format!(
            "refusing to go from https down to plain http ({})",
            strip_query(to)
        ));
    }
    let same = from.scheme() == to.scheme()
        && from.host_str() == to.host_str()
        && from.port_or_known_default() == to.port_or_known_default();
    if same {
        Hop::SameOrigin
    } else {
        Hop::CrossOrigin
    }
}

/// The redirect policy of every client: at most [`MAX_REDIRECTS`] hops, none refused by
/// [`hop`] from any URL before it (so no downgrade to http anywhere in the chain). reqwest
/// itself drops `Authorization` (and cookies) on a hop to another scheme, host or port, which
/// is [`Hop::CrossOrigin`]; the `Referer` header is turned off where the client is built.
pub(super) fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let refused = attempt
            .previous()
            .iter()
            .find_map(|p| match hop(p, attempt.url()) {
                Hop::Refused(why) => Some(why),
                _ => None,
            });
        match refused {
            Some(why) => attempt.error(format!("redirect refused: {why}")),
            None => attempt.follow(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_only_to_their_origin() {
        let u = |s: &str| Url::parse(s).unwrap();
        let base = u("https://r.example/");
        assert_eq!(
            hop(&base, &u("https://r.example/v2/x?y=1")),
            Hop::SameOrigin
        );
        assert_eq!(hop(&base, &u("https://r.example:443/v2/")), Hop::SameOrigin);
        assert_eq!(hop(&base, &u("https://R.EXAMPLE/v2/")), Hop::SameOrigin);
        assert_eq!(hop(&base, &u("https://r.example:8443/")), Hop::CrossOrigin);
        assert_eq!(
            hop(&base, &u("https://s3.example/b?sig=x")),
            Hop::CrossOrigin
        );
        assert_eq!(hop(&base, &u("https://sub.r.example/")), Hop::CrossOrigin);
        for down in [
            "http://r.example/v2/",
            "http://other.example/",
            "ftp://r.example/",
            "file:///etc/passwd",
        ] {
            assert!(matches!(hop(&base, &u(down)), Hop::Refused(_)), "{down}");
        }
        let plain = u("http://127.0.0.1:5000/");
        assert_eq!(
            hop(&plain, &u("http://127.0.0.1:5000/v2/")),
            Hop::SameOrigin
        );
        assert_eq!(
            hop(&plain, &u("http://127.0.0.1:5001/v2/")),
            Hop::CrossOrigin
        );
        assert_eq!(
            hop(&plain, &u("http://localhost:5000/v2/")),
            Hop::CrossOrigin
        );
        assert_eq!(
            hop(&plain, &u("https://127.0.0.1:5000/v2/")),
            Hop::CrossOrigin
        );
    }
}
