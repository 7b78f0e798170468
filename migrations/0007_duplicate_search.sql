-- Possible duplicates of a new report are the nearest open reports of its category within the
-- category's radius, at most 20 (reports/intake.rs). Searching them nearest-first on this index
-- (KNN, `<->` in EPSG:3857, then the radius checked on those 20) reads about 20 entries however
-- many reports lie around the spot;
-- measuring the geodesic distance of every report in the radius, as before, cost 4–5 ms of
-- PostgreSQL CPU per report once a few hundred open reports were within 250 m.
create index report_open_geom_3857_idx on report using gist (geom_3857) where status not in ('cancelled', 'closed');
