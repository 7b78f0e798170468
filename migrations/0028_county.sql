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

-- The county a grid belongs to, through its community and subdistrict (NULL when unplaced).
create function gridmap_grid_county(grid_id bigint) returns bigint
language sql stable parallel safe as $$
    select s.county_id
      from grid g join community c on c.id = g.community_id join subdistrict s on s.id = c.subdistrict_id
     where g.id = grid_id
$$;

-- ---------------------------------------------------------------------------------------------
-- County-scoped accounts. An account's county is the county whose admins manage it; a planner
-- or admin with a county is scoped to it (edits only that county's grids, manages only that
-- county's accounts). NULL: the whole database, as every account was before.
alter table account add column county_id bigint;
alter table account add constraint account_county_fkey foreign key (county_id) references county (id);
create index account_county_idx on account (county_id);

-- The county of a community (NULL when it or its subdistrict has none).
create function gridmap_community_county(community bigint) returns bigint
language sql stable parallel safe as $$
    select s.county_id from community c join subdistrict s on s.id = c.subdistrict_id where c.id = community
$$;

-- A county-scoped planner writes only grids of their county, before and after the write. The
-- API sets `gridmap.county` for the transaction of such a planner's edit (like gridmap.actor);
-- the check sits here so that every path a planner's edit takes — a plain PUT, a split, a
-- merge, a clip of the neighbours, a revert — is held to it, not just the one a handler
-- remembered. A household recount (no version change) is not an edit and passes.
create function grid_county_scope() returns trigger language plpgsql as $$
declare
    scope bigint := nullif(current_setting('gridmap.county', true), '')::bigint;
begin
    if scope is null then
        return coalesce(new, old);
    end if;
    if tg_op = 'UPDATE' and (new.geom, new.code, new.name, new.community_id)
                            is not distinct from (old.geom, old.code, old.name, old.community_id) then
        return new;
    end if;
    if tg_op in ('UPDATE', 'DELETE') and gridmap_community_county(old.community_id) is distinct from scope then
        raise exception using errcode = '42501',
              message = format('grid %s belongs to another county; a county planner edits only their county''s grids', old.code);
    end if;
    if tg_op in ('INSERT', 'UPDATE') and gridmap_community_county(new.community_id) is distinct from scope then
        raise exception using errcode = '42501',
              message = format('grid %s must belong to a community of your county (community_id)', new.code);
    end if;
    return coalesce(new, old);
end $$;
create trigger grid_county_scope before insert or update or delete on grid
    for each row execute function grid_county_scope();

-- The code of a grid's county (NULL when unplaced): the `county` property of OGC grids, which
-- filters with `?county=S002` or CQL2 `county = '370323'`.
create function gridmap_grid_county_code(grid bigint) returns text
language sql stable parallel safe as $$
    select k.code
      from grid g join community c on c.id = g.community_id join subdistrict s on s.id = c.subdistrict_id
      join county k on k.id = s.county_id
     where g.id = grid
$$;
