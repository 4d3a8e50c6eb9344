//! Listing a repository's tags (`GET /v2/<name>/tags/list`), every page: a registry that pages
//! answers with a `Link: <...>; rel="next"` header, followed only within the registry's own
//! origin (credentials never go elsewhere), up to a bound.

// See `client`: RegistryError travels in results by value on purpose.
#![allow(clippy::result_large_err)]

use super::body::{error_from, invalid, read_limited, MAX_DOCUMENT};
use super::client::{pull_scope, RegistryClient, DOCUMENT_TIMEOUT};
use super::error::RegistryError;
use reqwest::{Method, StatusCode};
use std::collections::HashSet;
use url::Url;

/// Most tags read from one repository (beyond: an error, not a truncation).
pub const MAX_TAGS: usize = 100_000;
/// Tags asked for per page.
const PAGE: usize = 1000;

impl RegistryClient {
    /// Every tag of `repo`, in the registry's order; `None` when the registry has no such
    /// repository.
    pub async fn list_tags(&self, repo: &str) -> Result<Option<Vec<String>>, RegistryError> {
        let name = self.repository("GET", repo)?;
        let mut url = self.base().clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.clear()
                .push("v2")
                .extend(name.components())
                .extend(["tags", "list"]);
        }
        url.query_pairs_mut().append_pair("n", &PAGE.to_string());
        let scope = pull_scope(&name);
        let mut tags = Vec::new();
        let mut seen = HashSet::new();
        let mut next = Some(url);
        while let Some(page) = next.take() {
            if !seen.insert(page.to_string()) {
                return Err(invalid(
                    &page,
                    "the tag list's pages do not end (a page came back)".into(),
                ));
            }
            let Some((bytes, link)) = self.tags_page(&page, &scope).await? else {
                if seen.len() == 1 {
                    return Ok(None);
                }
                return Err(invalid(&page, "a later page of the tag list is gone: the tags changed while they were read; try again".into()));
            };
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| invalid(&page, format!("the tag list is not JSON: {e}")))?;
            let names = v["tags"].as_array().into_iter().flatten();
            tags.extend(names.filter_map(|t| t.as_str().map(str::to_string)));
            if tags.len() > MAX_TAGS {
                return Err(invalid(
                    &page,
                    format!("the repository has more than {MAX_TAGS} tags; ocibuild reads at most that many"),
                ));
            }
            next = match link.as_deref().and_then(|l| next_page(&page, l)) {
                Some(Ok(u)) => Some(u),
                Some(Err(why)) => return Err(invalid(&page, why)),
                None => None,
            };
        }
        Ok(Some(tags))
    }

    /// One page of a tag list: its body and `Link` header; `None` on 404.
    async fn tags_page(
        &self,
        page: &Url,
        scope: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, RegistryError> {
        self.retry(|| async {
            let resp = self
                .send(&Method::GET, page, scope, &|| {
                    Ok(self.http.get(page.clone()).timeout(DOCUMENT_TIMEOUT))
                })
                .await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !resp.status().is_success() {
                return Err(error_from(&Method::GET, page, resp).await);
            }
            let link = resp
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let bytes = read_limited(page, resp, MAX_DOCUMENT).await?;
            Ok(Some((bytes, link)))
        })
        .await
    }
}

/// The `rel="next"` target of a `Link` header, resolved against `current`; an error when it
/// leaves the registry's origin.
fn next_page(current: &Url, link: &str) -> Option<Result<Url, String>> {
    let target = link.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let rel_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        rel_next.then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })?;
    Some(match current.join(&target) {
        Ok(u) if u.origin() == current.origin() => Ok(u),
        Ok(u) => Err(format!(
            "the next page of tags is at another origin ({}); it is not followed",
            u.origin().ascii_serialization()
        )),
        Err(e) => Err(format!("the next page's link {target:?} is not a URL: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_followed_within_the_origin_only() {
        let here = Url::parse("http://127.0.0.1:5000/v2/shop/cart/tags/list?n=2").unwrap();
        let next = next_page(&here, r#"</v2/shop/cart/tags/list?n=2&last=b>; rel="next""#);
        assert_eq!(
            next.unwrap().unwrap().as_str(),
            "http://127.0.0.1:5000/v2/shop/cart/tags/list?n=2&last=b"
        );
        assert!(
            next_page(&here, r#"<https://evil.test/v2/x/tags/list>; rel="next""#)
                .unwrap()
                .is_err()
        );
        assert!(next_page(&here, r#"</v2/x>; rel="prev""#).is_none());
    }
}
