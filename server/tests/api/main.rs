//! API and database tests: one test binary, a fresh PostGIS database per test (`#[sqlx::test]`),
//! the router driven in-process through `app()`.

mod abuse;
mod access;
mod admin;
mod allowed_next;
mod auth;
mod common;
mod counties;
mod emergency;
mod foundation;
mod functions;
mod grid_edit;
mod group_commit;
mod import;
mod index_generation;
mod leaders;
mod live_feed;
mod ogc;
mod one_state;
mod open311;
mod open_reports;
mod points_market;
mod privacy;
mod report_index;
mod reports;
mod rounds;
mod seed;
mod station_visits;
mod stations;
mod tiles;
mod token_cache;
mod trust;
mod wishes;
mod workflow_branches;
