//! Building the filtered, cursor-paged list queries: one helper so every list
//! pages the same way (id order, `id > cursor`, `limit + 1` rows to know if
//! there is more).

use rusqlite::types::Value;
use rusqlite::{Connection, Row};

use super::rows::sql_err;
use crate::model::page_from;
use crate::{Id, Page, PageRequest, StoreResult};

pub(crate) fn id_value(id: Id) -> Value {
    Value::Blob(id.as_bytes().to_vec())
}

/// `SELECT {cols} FROM {table} WHERE <conditions> AND id > ? ORDER BY id LIMIT ?`.
pub(crate) struct ListQuery {
    sql: String,
    params: Vec<Value>,
    has_where: bool,
}

impl ListQuery {
    pub fn new(cols: &str, table: &str) -> Self {
        ListQuery { sql: format!("SELECT {cols} FROM {table}"), params: Vec::new(), has_where: false }
    }

    /// Adds `column = value` when the value is given.
    pub fn eq(mut self, column: &str, value: Option<Value>) -> Self {
        if let Some(v) = value {
            self.sql.push_str(if self.has_where { " AND " } else { " WHERE " });
            self.sql.push_str(column);
            self.sql.push_str(" = ?");
            self.params.push(v);
            self.has_where = true;
        }
        self
    }

    pub fn fetch<T>(
        self,
        conn: &Connection,
        page: PageRequest,
        map: fn(&Row<'_>) -> rusqlite::Result<T>,
        id_of: fn(&T) -> Id,
    ) -> StoreResult<Page<T>> {
        let limit = page.clamped_limit();
        let ListQuery { mut sql, mut params, has_where } = self.eq_after(page.after);
        sql.push_str(" ORDER BY id LIMIT ?");
        params.push(Value::Integer(i64::from(limit) + 1));
        let _ = has_where;
        let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), map)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<T>>>())
            .map_err(sql_err)?;
        Ok(page_from(rows, limit, id_of))
    }

    fn eq_after(mut self, after: Option<Id>) -> Self {
        if let Some(after) = after {
            self.sql.push_str(if self.has_where { " AND " } else { " WHERE " });
            self.sql.push_str("id > ?");
            self.params.push(id_value(after));
            self.has_where = true;
        }
        self
    }
}
