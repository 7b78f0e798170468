//! gridmap: the map service under a county's urban grid governance — grid boundaries, buildings,
//! warm-"new" stations, and the riders' geotagged reports.

pub mod accounts;
pub mod api_keys;
pub mod auth;
pub mod changes;
pub mod cli;
pub mod config;
pub mod constraints;
pub mod counties;
pub mod db;
pub mod emergency;
pub mod export;
#[doc(hidden)]
pub mod fuzzing;
pub mod geo_input;
pub mod http;
pub mod import;
pub mod leaders;
pub mod nul;
pub mod ogc;
pub mod points;
pub mod reports;
pub mod rounds;
pub mod seed;
pub mod sentiment;
pub mod station_visits;
pub mod telemetry;
pub mod wishes;
