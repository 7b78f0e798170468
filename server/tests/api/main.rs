//! API and database tests: one test binary, a fresh PostGIS database per test (`#[sqlx::test]`),
//! the router driven in-process through `app()`.

mod auth;
mod common;
mod foundation;
mod import;
mod seed;
mod stations;
