-- Shared helpers: the updated_at stamp, who is writing, and geometry repair.

-- Touch updated_at on every update.
create or replace function gridmap_touch() returns trigger language plpgsql as $$
begin
    new.updated_at := now();
    return new;
end $$;

-- Who is writing: the API sets `gridmap.actor` / `gridmap.reason` for its transaction
-- (set_config(..., true)); plain SQL falls back to the database role.
create or replace function gridmap_actor() returns text language sql stable as $$
    select coalesce(nullif(current_setting('gridmap.actor', true), ''), current_user::text)
$$;

create or replace function gridmap_reason() returns text language sql stable as $$
    select nullif(current_setting('gridmap.reason', true), '')
$$;

-- A desktop GIS write without a version check (`gridmap.api_key`: the key's id; ogc/edit.rs).
create or replace function gridmap_api_key() returns bigint language sql stable as $$
    select nullif(current_setting('gridmap.api_key', true), '')::bigint
$$;

create or replace function gridmap_unchecked() returns boolean language sql stable as $$
    select coalesce(current_setting('gridmap.unchecked', true), '') = 'true'
$$;

-- Repair to a valid multipolygon (MakeValid can return collections; keep the polygonal part).
create or replace function gridmap_valid_multipolygon(g geometry) returns geometry
language sql immutable strict parallel safe as $$
    select case
        when ST_IsValid(g) and GeometryType(g) = 'MULTIPOLYGON' then g
        else ST_Multi(ST_CollectionExtract(ST_MakeValid(g), 3))
    end
$$;
