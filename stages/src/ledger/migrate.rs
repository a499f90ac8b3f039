//! Bringing a ledger's schema up to [`SCHEMA_VERSION`].

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::schema::{MIGRATIONS, SCHEMA_VERSION};
use super::LedgerError;

/// The schema version of an open database.
pub(crate) fn version(conn: &Connection) -> Result<i64, LedgerError> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Run every missing migration step, each in its own transaction together
/// with its `user_version` bump, so a crash mid-way leaves the database at
/// a whole version and the next open carries on from there.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), LedgerError> {
    let found = version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(LedgerError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another opener may have migrated between our read and our lock.
        if version(&tx)? > step as i64 {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", step as i64 + 1)?;
        tx.commit()?;
        tracing::debug!(path = %path.display(), version = step + 1, "ledger schema step applied");
    }
    // One line for what happened, not one per step.
    match found {
        0 => tracing::info!(path = %path.display(), version = SCHEMA_VERSION, "ledger created"),
        v if v < SCHEMA_VERSION => {
            tracing::info!(path = %path.display(), from = v, to = SCHEMA_VERSION, "ledger schema migrated")
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(conn: &Connection, table: &str) -> Vec<String> {
        let mut st = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap();
        let names = st.query_map([], |r| r.get(0)).unwrap();
        names.collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn stepwise_upgrade_equals_fresh_schema() {
        let mut fresh = Connection::open_in_memory().unwrap();
        migrate(&mut fresh, Path::new(":memory:")).unwrap();

        let mut old = Connection::open_in_memory().unwrap();
        old.execute_batch(MIGRATIONS[0]).unwrap();
        old.pragma_update(None, "user_version", 1).unwrap();
        migrate(&mut old, Path::new(":memory:")).unwrap();

        assert_eq!(version(&fresh).unwrap(), SCHEMA_VERSION);
        assert_eq!(version(&old).unwrap(), SCHEMA_VERSION);
        for t in ["runs", "assets", "findings"] {
            assert_eq!(columns(&fresh, t), columns(&old, t), "table {t}");
        }
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = migrate(&mut conn, Path::new("x.db")).unwrap_err();
        assert!(
            matches!(err, LedgerError::SchemaTooNew { found, .. } if found == SCHEMA_VERSION + 1)
        );
    }
}
