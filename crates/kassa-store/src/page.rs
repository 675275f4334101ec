//! A page of a list and where the next one starts.

/// A page of a list, newest first, and the cursor for the next page.
#[derive(Debug)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row says there is more.
    pub(crate) fn from_rows(
        mut rows: Vec<T>,
        limit: i64,
        cursor_of: impl Fn(&T) -> String,
    ) -> Self {
        let limit = usize::try_from(limit).unwrap_or(0);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(cursor_of)
        } else {
            None
        };
        Self {
            data: rows,
            next_cursor,
        }
    }
}

/// Where a list starts and how long it is.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// The id after which to continue (exclusive), from a previous page.
    pub after: Option<String>,
    pub limit: i64,
}
