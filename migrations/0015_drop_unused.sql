-- What nothing uses any more, dropped (issue 18). The server searches possible duplicates in
-- memory (reports/open_reports.rs); `gridmap_possible_duplicates` survived only as the reference
-- the test compares that search with, and its partial index cost every report insert and status
-- change a GiST update that no query read. The reference query lives in the test now
-- (server/tests/api/open_reports.rs).
--
-- From this migration on, SQL functions and trigger functions live in migrations/functions/
-- (see its README): numbered migrations no longer create or replace them.
drop function gridmap_possible_duplicates(text, float8, float8, float8);
drop index report_open_geom_3857_idx;
