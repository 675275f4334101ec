//! Cursor pagination: `?limit=&cursor=`, newest first, `next_cursor` until the end.

use kassa_store::PageRequest;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

pub fn page_request(limit: Option<i64>, cursor: Option<String>) -> Result<PageRequest, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(kassa_domain::Invalid::field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )
        .into());
    }
    if let Some(c) = &cursor
        && (c.len() > 64 || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(
            kassa_domain::Invalid::field("cursor", "is not a cursor from a previous page").into(),
        );
    }
    Ok(PageRequest {
        after: cursor,
        limit,
    })
}

/// Declares the list envelope `{"data": [...], "next_cursor": ...}` for one item type.
macro_rules! list_type {
    ($name:ident, $item:ty) => {
        #[derive(Debug, poem_openapi::Object)]
        pub struct $name {
            pub data: Vec<$item>,
            /// Pass as `cursor` to get the next page; absent on the last page.
            #[oai(skip_serializing_if_is_none)]
            pub next_cursor: Option<String>,
        }

        impl $name {
            pub fn from_page<R>(page: kassa_store::Page<R>, f: impl Fn(R) -> $item) -> Self {
                Self {
                    data: page.data.into_iter().map(f).collect(),
                    next_cursor: page.next_cursor,
                }
            }
        }
    };
}
pub(crate) use list_type;
