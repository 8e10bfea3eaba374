//! List paging (AIP-158): page sizes are clamped and page tokens are opaque to clients.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};

use crate::error::FieldViolation;

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 1000;

/// Validated paging parameters: how many rows to fetch, and the key to continue after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub size: i64,
    pub after: Option<String>,
}

impl Page {
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self, FieldViolation> {
        if page_size < 0 {
            return Err(FieldViolation::new("page_size", "不能为负 / must not be negative"));
        }
        let size = if page_size == 0 { DEFAULT_PAGE_SIZE } else { i64::from(page_size).min(MAX_PAGE_SIZE) };
        let after = if page_token.is_empty() {
            None
        } else {
            let bytes = B64
                .decode(page_token)
                .map_err(|_| FieldViolation::new("page_token", "无效的分页令牌 / invalid page token"))?;
            Some(
                String::from_utf8(bytes)
                    .map_err(|_| FieldViolation::new("page_token", "无效的分页令牌 / invalid page token"))?,
            )
        };
        Ok(Self { size, after })
    }

    /// Rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.size + 1
    }

    /// Trims the extra row and returns the token for the next page (empty on the last page).
    pub fn finish<T>(&self, rows: &mut Vec<T>, key: impl Fn(&T) -> String) -> String {
        if rows.len() as i64 > self.size {
            rows.truncate(self.size as usize);
            rows.last().map(|last| B64.encode(key(last))).unwrap_or_default()
        } else {
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_continue_after_the_last_key() {
        let page = Page::parse(2, "").unwrap();
        let mut rows = vec!["a", "b", "c"];
        let token = page.finish(&mut rows, |r| (*r).to_owned());
        assert_eq!(rows, ["a", "b"]);
        assert_eq!(Page::parse(2, &token).unwrap().after.as_deref(), Some("b"));
        assert!(Page::parse(-1, "").is_err());
        assert!(Page::parse(1, "!!").is_err());
        assert_eq!(Page::parse(1_000_000, "").unwrap().size, MAX_PAGE_SIZE);
    }
}
