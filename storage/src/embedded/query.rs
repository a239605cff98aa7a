//! Building the filtered, cursor-paged list queries: one helper so every list
//! pages the same way (id order, `id > cursor`, `limit + 1` rows to know if
//! there is more); and the one read of the work queues' due rows.

use rusqlite::types::Value;
use rusqlite::{params, Connection, Row};

use super::rows::sql_err;
use crate::model::page_from;
use crate::{Id, Page, PageRequest, StoreResult, Timestamp};

/// The due pending rows of a work queue (`deliveries` or `events`), oldest
/// first, at most `limit`: each id with its attempts so far. Read from the
/// queue's covering `<table>_due` index only (schema step 8), so a claim
/// costs its limit, not the backlog.
pub(crate) fn due_rows(conn: &Connection, table: &str, now: Timestamp, limit: u32) -> StoreResult<Vec<(Id, i32)>> {
    conn.prepare_cached(&due_sql(table))
        .and_then(|mut s| s.query_map(params![now, limit], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(sql_err)
}

fn due_sql(table: &str) -> String {
    format!(
        "SELECT id, attempts FROM {table} INDEXED BY {table}_due \
         WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?"
    )
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A claim walks the covering due index in order: no table read, no sort
    /// of the backlog, whatever its size.
    #[test]
    fn the_due_rows_of_both_queues_come_from_their_covering_index_without_a_sort() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = super::super::schema::open_connection(&dir.path().join("t.db"), false).unwrap();
        super::super::schema::prepare(&mut conn).unwrap();
        for table in ["deliveries", "events"] {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {}", due_sql(table))).unwrap();
            let steps = stmt.query_map(params![Timestamp::now(), 10], |r| r.get::<_, String>(3)).unwrap();
            let plan = steps.collect::<rusqlite::Result<Vec<_>>>().unwrap().join("\n");
            assert!(plan.contains(&format!("USING COVERING INDEX {table}_due")), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }
}
