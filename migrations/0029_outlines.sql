-- Generalised outlines for low zooms (issue 22): one row per county, subdistrict and community,
-- the union of its grids with aggregate properties. Below the zoom where a single grid is a few
-- pixels wide, tiles draw these instead of thousands of grids (a province at ×100 has ~26,700).
--
-- Built from the grids and kept in sync in the same transaction as the write that changes them
-- (the statement triggers in migrations/functions/outlines.sql); the change notifications of
-- migration 0002 announce outline rows like any tile table, so cached tiles follow.
--
-- `outline_source` is the one definition of what an outline is: the refresh function and the
-- first fill below both read it. A grid outside any community (or a subdistrict without a
-- county) belongs to no outline of that level.

create table outline (
    level          text not null,
    key            bigint not null,
    grids          integer not null,
    households     integer not null,
    workers        integer not null,
    -- The spread of grid balance (households / 300) inside the outline.
    balance_min    float8 not null,
    balance_max    float8 not null,
    geom           geometry(MultiPolygon, 4326) not null,
    geom_3857      geometry(MultiPolygon, 3857) generated always as (ST_Transform(geom, 3857)) stored,
    constraint outline_pkey primary key (level, key),
    constraint outline_level_check check (level in ('county', 'subdistrict', 'community'))
);
create index outline_geom_3857_idx on outline using gist (geom_3857);

-- Each branch groups by its own key, so a filter on (level, key) reaches the grid scan: a
-- refresh reads only the grids of the outlines it rebuilds.
create view outline_source as
select 'community'::text as level, g.community_id as key, count(*)::int as grids,
       sum(g.households)::int as households,
       sum((select count(*) from grid_assignment a where a.grid_id = g.id))::int as workers,
       round(min(g.households) / 300.0, 3)::float8 as balance_min,
       round(max(g.households) / 300.0, 3)::float8 as balance_max,
       ST_Multi(ST_CollectionExtract(ST_Union(g.geom), 3)) as geom
  from grid g
 where g.community_id is not null
 group by g.community_id
union all
select 'subdistrict', c.subdistrict_id, count(*)::int, sum(g.households)::int,
       sum((select count(*) from grid_assignment a where a.grid_id = g.id))::int,
       round(min(g.households) / 300.0, 3)::float8, round(max(g.households) / 300.0, 3)::float8,
       ST_Multi(ST_CollectionExtract(ST_Union(g.geom), 3))
  from grid g join community c on c.id = g.community_id
 group by c.subdistrict_id
union all
select 'county', s.county_id, count(*)::int, sum(g.households)::int,
       sum((select count(*) from grid_assignment a where a.grid_id = g.id))::int,
       round(min(g.households) / 300.0, 3)::float8, round(max(g.households) / 300.0, 3)::float8,
       ST_Multi(ST_CollectionExtract(ST_Union(g.geom), 3))
  from grid g join community c on c.id = g.community_id join subdistrict s on s.id = c.subdistrict_id
 where s.county_id is not null
 group by s.county_id;

insert into outline (level, key, grids, households, workers, balance_min, balance_max, geom)
select level, key, grids, households, workers, balance_min, balance_max, geom
  from outline_source
 where not ST_IsEmpty(geom);

-- Outline changes are announced like any tile table's (the server drops the grids tiles there).
create trigger outline_tiles_insert after insert on outline
    referencing new table as new_rows for each statement execute function gridmap_tiles_changed();
create trigger outline_tiles_update after update on outline
    referencing old table as old_rows new table as new_rows for each statement execute function gridmap_tiles_changed();
create trigger outline_tiles_delete after delete on outline
    referencing old table as old_rows for each statement execute function gridmap_tiles_changed();
create trigger outline_tiles_truncate after truncate on outline
    for each statement execute function gridmap_tiles_changed();
