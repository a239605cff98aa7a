//! Cursor-paged list queries with optional equality filters.
//!
//! The SQL names only the filters that are set, rather than `($1 IS NULL OR
//! col = $1)`, so that each combination gets its own prepared statement whose
//! plan can use the matching index (see migrations/0001_init.sql) even after
//! PostgreSQL switches to a generic plan.

use tokio_postgres::types::ToSql;

use super::pool::Conn;
use crate::model::page_from;
use crate::{Id, Page, PageRequest, StoreResult};

type Param = Box<dyn ToSql + Sync + Send>;

pub(super) struct ListQuery {
    cols: &'static str,
    table: &'static str,
    filters: Vec<(&'static str, Param)>,
}

impl ListQuery {
    pub(super) fn new(cols: &'static str, table: &'static str) -> Self {
        ListQuery { cols, table, filters: Vec::new() }
    }

    /// Adds `col = value` when `value` is set.
    pub(super) fn eq<T: ToSql + Sync + Send + 'static>(mut self, col: &'static str, value: Option<T>) -> Self {
        if let Some(v) = value {
            self.filters.push((col, Box::new(v)));
        }
        self
    }

    fn sql(&self, paged: bool) -> String {
        let mut conds: Vec<String> =
            self.filters.iter().enumerate().map(|(i, (col, _))| format!("{col} = ${}", i + 1)).collect();
        let mut n = self.filters.len();
        if paged {
            n += 1;
            conds.push(format!("id > ${n}"));
        }
        let filter = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
        format!("SELECT {} FROM {}{filter} ORDER BY id LIMIT ${}", self.cols, self.table, n + 1)
    }

    pub(super) async fn fetch<T>(
        self,
        conn: &mut Conn,
        page: PageRequest,
        decode: fn(&tokio_postgres::Row) -> StoreResult<T>,
        id_of: fn(&T) -> Id,
    ) -> StoreResult<Page<T>> {
        let limit = page.clamped_limit();
        let fetch = i64::from(limit) + 1;
        let stmt = conn.prepare(&self.sql(page.after.is_some())).await?;
        let mut params: Vec<&(dyn ToSql + Sync)> =
            self.filters.iter().map(|(_, v)| v.as_ref() as &(dyn ToSql + Sync)).collect();
        if let Some(after) = &page.after {
            params.push(after);
        }
        params.push(&fetch);
        let rows = conn.client.query(&stmt, &params).await.map_err(super::errors::map_err)?;
        Ok(page_from(super::rows::all(&rows, decode)?, limit, id_of))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_only_the_filters_that_are_set() {
        let q = ListQuery::new("id", "t").eq("tenant_id", Some(Id::nil())).eq::<&str>("status", None);
        assert_eq!(q.sql(false), "SELECT id FROM t WHERE tenant_id = $1 ORDER BY id LIMIT $2");
        assert_eq!(q.sql(true), "SELECT id FROM t WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3");
    }

    #[test]
    fn unfiltered_lists_page_by_id_alone() {
        let q = ListQuery::new("id, name", "tenants");
        assert_eq!(q.sql(false), "SELECT id, name FROM tenants ORDER BY id LIMIT $1");
        assert_eq!(q.sql(true), "SELECT id, name FROM tenants WHERE id > $1 ORDER BY id LIMIT $2");
    }
}
