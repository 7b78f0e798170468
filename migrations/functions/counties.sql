-- Counties (issue 22, migration 0028): the county of a grid or community, and the trigger that
-- holds a county-scoped planner to their county's grids.

-- The county a grid belongs to, through its community and subdistrict (NULL when unplaced).
create or replace function gridmap_grid_county(grid_id bigint) returns bigint
language sql stable parallel safe as $$
    select s.county_id
      from grid g join community c on c.id = g.community_id join subdistrict s on s.id = c.subdistrict_id
     where g.id = grid_id
$$;

-- The county of a community (NULL when it or its subdistrict has none).
create or replace function gridmap_community_county(community bigint) returns bigint
language sql stable parallel safe as $$
    select s.county_id from community c join subdistrict s on s.id = c.subdistrict_id where c.id = community
$$;

-- A county-scoped planner writes only grids of their county, before and after the write. The
-- API sets `gridmap.county` for the transaction of such a planner's edit (like gridmap.actor);
-- the check sits here so that every path a planner's edit takes — a plain PUT, a split, a
-- merge, a clip of the neighbours, a revert — is held to it, not just the one a handler
-- remembered. A household recount (no version change) is not an edit and passes.
create or replace function grid_county_scope() returns trigger language plpgsql as $$
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
create or replace trigger grid_county_scope before insert or update or delete on grid
    for each row execute function grid_county_scope();

-- The code of a grid's county (NULL when unplaced), for SQL users. OGC's `county` property of
-- grids, buildings, stations and reports reads the same path as a join instead
-- (server/src/ogc/collections.rs), so that a filter on it is not a call per row.
create or replace function gridmap_grid_county_code(grid bigint) returns text
language sql stable parallel safe as $$
    select k.code
      from grid g join community c on c.id = g.community_id join subdistrict s on s.id = c.subdistrict_id
      join county k on k.id = s.county_id
     where g.id = grid
$$;
