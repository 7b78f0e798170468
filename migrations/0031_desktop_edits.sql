-- A desktop GIS (QGIS ≥ 3.32) edits grids through OGC API Features Part 4 but sends no
-- If-Match. gridmap lets a named desktop API key (scope ogc_edit) write without it (docs/ogc.md):
-- checked against the `version` the body carries when it carries one, and otherwise recorded
-- here as an unchecked write — public, so a planner reviewing a grid's history sees which
-- versions were written without a check — with the key that made it (private: never served).
alter table grid_version add column unchecked boolean not null default false;
alter table grid_version add column api_key_id bigint;
