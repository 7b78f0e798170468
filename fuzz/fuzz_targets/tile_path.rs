#![no_main]
//! Fuzz target: see `gridmap_server::fuzzing::tile_path`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gridmap_server::fuzzing::tile_path(data));
