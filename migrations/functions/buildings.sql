-- Buildings: each belongs to the grid its point on surface lies in, and a grid's household
-- count is the sum of its buildings' (kept by these triggers whoever writes).

-- The grid a point belongs to. A point on a shared edge or vertex is covered by several grids:
-- the one with the lowest id wins, so the answer is deterministic. (The report assignment uses
-- the same rule; its in-memory index is tested against this function.)
create or replace function gridmap_grid_at(p geometry) returns bigint
language sql stable parallel safe as $$
    select g.id from grid g where ST_Covers(g.geom, p) order by g.id limit 1
$$;

create or replace function building_before_write() returns trigger language plpgsql as $$
begin
    new.geom := gridmap_valid_multipolygon(new.geom);
    if tg_op = 'INSERT' or new.geom is distinct from old.geom then
        new.grid_id := gridmap_grid_at(ST_PointOnSurface(new.geom));
    end if;
    if tg_op = 'UPDATE' then
        new.updated_at := now();
    end if;
    return new;
end $$;

-- Recount households for the given grids from the buildings that belong to them.
create or replace function gridmap_recount_households(grid_ids bigint[]) returns void
language sql as $$
    update grid g
       set households = coalesce(s.total, 0)
      from (select gi.id, (select sum(b.households) from building b where b.grid_id = gi.id) as total
              from unnest(grid_ids) as gi(id)) s
     where g.id = s.id and g.households is distinct from coalesce(s.total, 0)::integer
$$;

create or replace function building_after_insert() returns trigger language plpgsql as $$
begin
    perform gridmap_recount_households(array(select distinct grid_id from new_rows where grid_id is not null));
    return null;
end $$;

create or replace function building_after_update() returns trigger language plpgsql as $$
begin
    perform gridmap_recount_households(array(
        select grid_id from new_rows where grid_id is not null
        union select grid_id from old_rows where grid_id is not null));
    return null;
end $$;

create or replace function building_after_delete() returns trigger language plpgsql as $$
begin
    perform gridmap_recount_households(array(select distinct grid_id from old_rows where grid_id is not null));
    return null;
end $$;
