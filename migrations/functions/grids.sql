-- Grids: geometry repair, versions and their history, and buildings following a re-drawn grid.

-- Repair geometry, bump the version on a real change (not on a household recount), stamp author.
create or replace function grid_before_write() returns trigger language plpgsql as $$
begin
    new.geom := gridmap_valid_multipolygon(new.geom);
    if tg_op = 'INSERT' then
        new.version := 1;
        new.updated_by := gridmap_actor();
        return new;
    end if;
    if (new.geom, new.code, new.name, new.community_id)
       is distinct from (old.geom, old.code, old.name, old.community_id) then
        new.version := old.version + 1;
        new.updated_by := gridmap_actor();
        new.updated_at := now();
    end if;
    return new;
end $$;

create or replace function grid_record_version() returns trigger language plpgsql as $$
begin
    if tg_op = 'DELETE' then
        insert into grid_version (grid_id, version, op, code, name, community_id, geom, author, reason,
                                  unchecked, api_key_id)
        values (old.id, old.version, 'delete', old.code, old.name, old.community_id, old.geom,
                gridmap_actor(), gridmap_reason(), gridmap_unchecked(), gridmap_api_key());
        return old;
    end if;
    if tg_op = 'UPDATE' and new.version = old.version then
        return new; -- only the derived household count changed
    end if;
    insert into grid_version (grid_id, version, op, code, name, community_id, geom, author, reason,
                              unchecked, api_key_id)
    values (new.id, new.version, lower(tg_op), new.code, new.name, new.community_id, new.geom,
            new.updated_by, gridmap_reason(), gridmap_unchecked(), gridmap_api_key());
    return new;
end $$;

-- When grid geometry changes, buildings near the old and new shapes may change grid.
create or replace function gridmap_reassign_buildings(area geometry) returns void language plpgsql as $$
begin
    if area is null then
        return;
    end if;
    -- The building statement trigger recounts the grids the moved buildings left and joined;
    -- grids whose shape changed without moving any building keep their (unchanged) count.
    update building b
       set grid_id = gridmap_grid_at(b.anchor)
     where b.anchor && area
       and b.grid_id is distinct from gridmap_grid_at(b.anchor);
end $$;

create or replace function grid_after_insert() returns trigger language plpgsql as $$
begin
    perform gridmap_reassign_buildings((select ST_SetSRID(ST_Extent(geom)::geometry, 4326) from new_rows));
    return null;
end $$;

create or replace function grid_after_update() returns trigger language plpgsql as $$
begin
    perform gridmap_reassign_buildings((
        select ST_SetSRID(ST_Extent(g)::geometry, 4326) from (
            select n.geom as g from new_rows n join old_rows o using (id) where n.geom is distinct from o.geom
            union all
            select o.geom from new_rows n join old_rows o using (id) where n.geom is distinct from o.geom
        ) changed));
    return null;
end $$;

create or replace function grid_after_delete() returns trigger language plpgsql as $$
begin
    perform gridmap_reassign_buildings((select ST_SetSRID(ST_Extent(geom)::geometry, 4326) from old_rows));
    return null;
end $$;
