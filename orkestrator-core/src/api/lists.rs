//! Paged lists: a page and the query that asks for one.

use serde::{Deserialize, Serialize};

use super::errors::ApiError;

/// One page of a list: its items, and a token for the next page when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass it as `continue` to get the next page; absent on the last page.
    #[serde(default, rename = "continue", skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `?limit=N&continue=TOKEN` of a paged list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Items per page: 1 to [`ListQuery::MAX_LIMIT`], default [`ListQuery::DEFAULT_LIMIT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The token of the previous page's answer.
    #[serde(default, rename = "continue", skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The least state index the answer must reflect (`?index=N`, e.g. a submission's): a
    /// follower manager waits until its copy has it; the leader always has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
}

impl ListQuery {
    /// Items per page when `limit` is not given.
    pub const DEFAULT_LIMIT: usize = 500;
    /// The most items one page may hold.
    pub const MAX_LIMIT: usize = 5_000;

    /// The first page of `limit` items.
    pub fn first(limit: usize) -> Self {
        ListQuery {
            limit: Some(limit),
            after: None,
            index: None,
        }
    }

    /// The page size asked for, checked.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(Self::DEFAULT_LIMIT),
            Some(n) if (1..=Self::MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::bad_request(
                "invalid_limit",
                format!(
                    "limit {n} is out of range: ask for 1 to {} items",
                    Self::MAX_LIMIT
                ),
            )),
        }
    }
}
