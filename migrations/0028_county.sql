-- Many counties in one database (issue 22): the hierarchy gains `county` above subdistrict, so a
-- province's data has one home: county → subdistrict (街道) → community (社区) → grid (网格).
--
-- A county has a code (the national administrative code for a real one, e.g. 370323 for
-- Yiyuan; anything in the grid-code alphabet for a synthetic one) and its areas: the boundary
-- reports must fall in and the urban area its grids partition. Those stay in `area`, which now
-- holds one row per (county, kind) instead of one per kind.
--
-- `subdistrict.county_id` and `area.county_id` may be NULL: rows written by clients that do not
-- know about counties yet (older scripts, a single-county database) keep working; such a
-- subdistrict belongs to no county, and only unscoped planners and admins manage it.

create table county (
    id          bigint generated always as identity,
    code        text not null,
    name        text not null,
    source      text not null default 'operator',
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    constraint county_pkey primary key (id),
    constraint county_code_key unique (code),
    constraint county_code_format check (code ~ '^[A-Z0-9][A-Z0-9-]{1,31}$'),
    constraint county_name_not_blank check (btrim(name) <> '')
);
create trigger county_touch before update on county for each row execute function gridmap_touch();

alter table subdistrict add column county_id bigint;
alter table subdistrict add constraint subdistrict_county_fkey foreign key (county_id) references county (id);
create index subdistrict_county_idx on subdistrict (county_id);

-- One boundary and one urban area per county (NULLS NOT DISTINCT: a database without counties
-- still has at most one of each kind, as before).
alter table area add column county_id bigint;
alter table area add constraint area_county_fkey foreign key (county_id) references county (id) on delete cascade;
alter table area drop constraint area_pkey;
alter table area add column id bigint generated always as identity;
alter table area add constraint area_pkey primary key (id);
alter table area add constraint area_county_kind_key unique nulls not distinct (county_id, kind);
create index area_geom_idx on area using gist (geom);

-- An existing single-county database is Yiyuan's: give its rows their county.
insert into county (code, name, source)
select '370323', '沂源县', 'migration 0028'
 where exists (select 1 from area) or exists (select 1 from subdistrict);
update subdistrict set county_id = (select id from county where code = '370323') where county_id is null;
update area set county_id = (select id from county where code = '370323') where county_id is null;

-- ---------------------------------------------------------------------------------------------
-- County-scoped accounts. An account's county is the county whose admins manage it; a planner
-- or admin with a county is scoped to it (edits only that county's grids, manages only that
-- county's accounts). NULL: the whole database, as every account was before.
alter table account add column county_id bigint;
alter table account add constraint account_county_fkey foreign key (county_id) references county (id);
create index account_county_idx on account (county_id);

-- The functions of the county level and the trigger grid_county_scope live in
-- migrations/functions/counties.sql (its README says why).
