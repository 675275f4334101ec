//! One body of SQL, run on each backend with its own types.
//!
//! The store holds a typed pool, `SqlitePool` or `PgPool`, and a write transaction is
//! typed the same way ([`Tx`]). `db_run!` (after vaultwarden's macro of that name)
//! expands the same query once per backend, binding a connection typed for it, so a
//! query is written once while each backend decodes its native types (`Timestamp` as
//! INTEGER ms or `timestamptz`, `Json` as TEXT or `jsonb`, `bool` as 0/1 or `boolean`).
//! Where the SQL itself differs (`FOR UPDATE SKIP LOCKED`, apalis's table names) the
//! code matches on [`Backend`] explicitly.

use sqlx::{PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Transaction};

use crate::error::StoreError;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The store's pool, typed for its backend.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A write transaction, typed for the store's backend.
#[derive(Debug)]
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

/// One value per backend: what `db_run!` matches on.
pub(crate) enum On<S, P> {
    Sqlite(S),
    Postgres(P),
}

/// A pool handle (shared) that `db_run!` can type.
pub(crate) trait TypedRef {
    fn typed(&self) -> On<&SqlitePool, &PgPool>;
}

/// A transaction (borrowed mutably) that `db_run!` can type.
pub(crate) trait TypedMut {
    fn typed(&mut self) -> On<&mut SqliteConnection, &mut PgConnection>;
}

impl TypedRef for Pool {
    fn typed(&self) -> On<&SqlitePool, &PgPool> {
        match self {
            Pool::Sqlite(p) => On::Sqlite(p),
            Pool::Postgres(p) => On::Postgres(p),
        }
    }
}

impl TypedMut for Tx {
    fn typed(&mut self) -> On<&mut SqliteConnection, &mut PgConnection> {
        match self {
            Tx::Sqlite(tx) => On::Sqlite(&mut **tx),
            Tx::Postgres(tx) => On::Postgres(&mut **tx),
        }
    }
}

/// Runs `$body` with `$c` bound to `$on`'s executor typed for its backend: a
/// `&SqlitePool`/`&PgPool` for a [`Store`](crate::store::Store), a `&mut SqliteConnection`/
/// `&mut PgConnection` for a [`Tx`]. The body is written once and compiled once per
/// backend; both expansions must have the same type (use `.rows_affected()` on an
/// `execute`'s result).
macro_rules! db_run {
    ($on:expr, $c:ident => $body:expr) => {{
        #[allow(unused_imports)]
        use $crate::db::{TypedMut as _, TypedRef as _};
        match $on.typed() {
            $crate::db::On::Sqlite($c) => $body,
            $crate::db::On::Postgres($c) => $body,
        }
    }};
}
pub(crate) use db_run;

/// `$from, $from+1, …`: `count` placeholders for an `IN (…)`.
pub(crate) fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `count` rows of `width` numbered placeholders each, from `$from`, for a multi-row
/// `INSERT … VALUES`; `tail` (SQL literals, or empty) ends each row.
pub(crate) fn values_rows(from: usize, count: usize, width: usize, tail: &str) -> String {
    (0..count)
        .map(|row| {
            let cells = placeholders(from + row * width, width);
            match tail {
                "" => format!("({cells})"),
                tail => format!("({cells}, {tail})"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
