-- Red building leaders (migration 0032): what "a current leader" means, in one place, for the
-- API (server/src/leaders.rs), the coverage counts and the tile layers (tiles/src/schema.rs).

-- The county's calendar day (UTC+8, no daylight saving): terms start and end on local days.
create or replace function gridmap_county_today() returns date
language sql stable as $$
    select (now() at time zone 'Asia/Shanghai')::date
$$;

-- A building's leader state today: 'current' (a term that was not ended covers today, for the
-- building or one of its units), 'expired' (none does, but the last term ran out without being
-- ended or renewed), else 'none'.
create or replace function gridmap_leader_state(building bigint) returns text
language sql stable as $$
    select case
        when exists (select 1 from building_leader l
                      where l.building_id = building and l.ended_at is null
                        and gridmap_county_today() between l.term_start and l.term_end) then 'current'
        when exists (select 1 from building_leader l
                      where l.building_id = building and l.ended_at is null
                        and l.term_end < gridmap_county_today()) then 'expired'
        else 'none'
    end
$$;

-- A leader's term changes the coverage of its building and of its grid (the `leaders` tile
-- layer: `leader_gaps` and `leader_coverage`): announce both boxes under `building_leader`,
-- whoever writes (the server, an import, an operator's SQL), as the other tile tables do
-- (tiles.sql). Announcing them as `building` and `grid` would re-read those in-memory layers
-- and drop their cached base tiles for a change the base map does not draw.
create or replace function gridmap_tiles_leader_changed() returns trigger language plpgsql as $$
declare
    buildings bigint[];
begin
    if tg_op = 'INSERT' then
        buildings := array(select building_id from new_rows);
    elsif tg_op = 'UPDATE' then
        buildings := array(select building_id from new_rows union select building_id from old_rows);
    else
        buildings := array(select building_id from old_rows);
    end if;
    perform gridmap_tiles_announce('building_leader', array(
        select box2d(b.geom_3857) from building b where b.id = any(buildings)
        union all
        select box2d(g.geom_3857) from grid g
         where g.id in (select b.grid_id from building b where b.id = any(buildings))));
    return null;
end $$;

create or replace trigger building_leader_tiles_insert after insert on building_leader
    referencing new table as new_rows for each statement execute function gridmap_tiles_leader_changed();
create or replace trigger building_leader_tiles_update after update on building_leader
    referencing new table as new_rows old table as old_rows
    for each statement execute function gridmap_tiles_leader_changed();
create or replace trigger building_leader_tiles_delete after delete on building_leader
    referencing old table as old_rows for each statement execute function gridmap_tiles_leader_changed();
create or replace trigger building_leader_touch before update on building_leader
    for each row execute function gridmap_touch();
